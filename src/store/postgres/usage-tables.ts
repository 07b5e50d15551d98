// Usage counters per organization and billing period, the periods whose billing records are stored, the
// schedule marks (last period emitted per frequency) and the "seen since" read of schedule eligibility, on
// PostgreSQL. Used by PostgresStore.
//
// Cluster safety: addUsage is a multi-row upsert (counters add up whichever node flushes); closing a
// period inserts its usage_periods row with ON CONFLICT DO NOTHING in the same transaction as its
// billing_record events, so only the closing call stores them; claimSchedulePeriod is one conditional
// upsert, so of several nodes claiming a period exactly one gets true.
import type pg from 'pg';
import type { SensorRecord } from '../../domain/records.js';
import type { UsageAmount, UsageDelta } from '../../domain/usage.js';
import type { StoredEvent } from '../store.js';
import { rounds } from './batches.js';
import { run, withTransaction } from './connection.js';
import { insertEvents, lockEventLog } from './event-log.js';
import type { EventPartitions } from './partitions.js';
import { SENSOR_SELECT, toSensor, type SensorRow } from './rows.js';

const UPSERT = (set: string) =>
  'INSERT INTO usage_counters (oid, period, cat, k, v) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::float8[])' +
  ` ON CONFLICT (oid, period, cat, k) DO UPDATE SET v = ${set}`;
const ADD = UPSERT('usage_counters.v + excluded.v');
const SET = UPSERT('excluded.v');

export class UsageTables {
  constructor(
    private readonly pool: pg.Pool,
    private readonly partitions: EventPartitions,
  ) {}

  /** One transaction; a round per repeated counter, so deltas apply in order (batches.ts). */
  async addUsage(deltas: ReadonlyArray<UsageDelta>): Promise<void> {
    if (deltas.length === 0) return;
    await withTransaction(this.pool, async (client) => {
      for (const round of rounds(deltas, (d) => JSON.stringify([d.oid, d.period, d.cat, d.k]))) {
        for (const [sql, mode] of [[ADD, 'add'], [SET, 'set']] as const) {
          const rows = round.filter((d) => d.mode === mode);
          if (rows.length === 0) continue;
          await run(client, sql, [rows.map((d) => d.oid), rows.map((d) => d.period), rows.map((d) => d.cat), rows.map((d) => d.k), rows.map((d) => d.v)]);
        }
      }
    });
  }

  async listUsage(oid: string, fromPeriod: number, toPeriod: number): Promise<UsageAmount[]> {
    const { rows } = await run<UsageAmount>(
      this.pool,
      'SELECT oid, period, cat, k, v FROM usage_counters WHERE oid = $1 AND period >= $2 AND period <= $3 ORDER BY period, cat, k',
      [oid, fromPeriod, toPeriod],
    );
    return rows;
  }

  async usageOfPeriod(period: number): Promise<UsageAmount[]> {
    return (await run<UsageAmount>(this.pool, 'SELECT oid, period, cat, k, v FROM usage_counters WHERE period = $1 ORDER BY oid, cat, k', [period])).rows;
  }

  async unclosedUsagePeriods(before: number): Promise<number[]> {
    const { rows } = await run<{ period: number }>(
      this.pool,
      'SELECT DISTINCT c.period FROM usage_counters c WHERE c.period < $1 AND NOT EXISTS (SELECT 1 FROM usage_periods p WHERE p.period = c.period) ORDER BY c.period',
      [before],
    );
    return rows.map((r) => r.period);
  }

  /**
   * The event-log lock comes first (as in every appending transaction, event-log.ts), then the period's
   * row: a concurrent close waits, then finds the period closed and stores nothing.
   */
  async closeUsagePeriod(period: number, events: ReadonlyArray<StoredEvent>, at: number): Promise<boolean> {
    return this.partitions.appending(events.map((e) => e.event_time), () =>
      withTransaction(this.pool, async (client) => {
        await lockEventLog(client);
        const { rowCount } = await run(client, 'INSERT INTO usage_periods (period, closed) VALUES ($1, $2) ON CONFLICT (period) DO NOTHING', [period, at]);
        if ((rowCount ?? 0) === 0) return false;
        await insertEvents(client, events);
        return true;
      }),
    );
  }

  async getScheduleMarks(): Promise<Record<string, number>> {
    const { rows } = await run<{ frequency: string; period: number }>(this.pool, 'SELECT frequency, period FROM schedule_marks');
    return Object.fromEntries(rows.map((r) => [r.frequency, r.period]));
  }

  async claimSchedulePeriod(frequency: string, period: number): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'INSERT INTO schedule_marks (frequency, period) VALUES ($1, $2) ON CONFLICT (frequency) DO UPDATE SET period = excluded.period' +
        ' WHERE excluded.period > schedule_marks.period',
      [frequency, period],
    );
    return (rowCount ?? 0) > 0;
  }

  async listSensorsSeenSince(since: number): Promise<SensorRecord[]> {
    const { rows } = await run<SensorRow>(
      this.pool,
      `${SENSOR_SELECT} WHERE s.alive IS NOT NULL AND s.alive >= $2 AND s.deleted IS NULL ORDER BY s.oid, s.sid`,
      [Date.now(), since],
    );
    return rows.map(toSensor);
  }
}
