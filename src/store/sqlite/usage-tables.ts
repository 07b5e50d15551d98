// Usage counters per organization and billing period, the periods whose billing records are stored, the
// schedule marks (last period emitted per frequency) and the "seen since" read of schedule eligibility, on
// SQLite. Used by SqliteStore; kept apart so the store file stays about sensors and events.
import type Database from 'better-sqlite3';
import type { SensorRecord } from '../../domain/records.js';
import type { UsageAmount, UsageDelta } from '../../domain/usage.js';
import type { StoredEvent } from '../store.js';
import { guarded } from './connection.js';
import { toSensor, type SensorRow } from './rows.js';

/** Adds to a usage counter (parameters: oid, period, cat, k, v). */
export const USAGE_ADD = 'INSERT INTO usage_counters (oid, period, cat, k, v) VALUES (?, ?, ?, ?, ?) ON CONFLICT (oid, period, cat, k) DO UPDATE SET v = v + excluded.v';
/** Sets a usage counter (same parameters). */
export const USAGE_SET = 'INSERT INTO usage_counters (oid, period, cat, k, v) VALUES (?, ?, ?, ?, ?) ON CONFLICT (oid, period, cat, k) DO UPDATE SET v = excluded.v';

export class UsageTables {
  constructor(private readonly db: Database.Database) {}

  addUsage(deltas: ReadonlyArray<UsageDelta>): void {
    if (deltas.length === 0) return;
    const add = this.db.prepare(USAGE_ADD);
    const set = this.db.prepare(USAGE_SET);
    guarded(() =>
      this.db.transaction(() => {
        for (const d of deltas) (d.mode === 'set' ? set : add).run(d.oid, d.period, d.cat, d.k, d.v);
      }).immediate(),
    );
  }

  listUsage(oid: string, fromPeriod: number, toPeriod: number): UsageAmount[] {
    return this.db
      .prepare('SELECT oid, period, cat, k, v FROM usage_counters WHERE oid = ? AND period >= ? AND period <= ? ORDER BY period, cat, k')
      .all(oid, fromPeriod, toPeriod) as UsageAmount[];
  }

  usageOfPeriod(period: number): UsageAmount[] {
    // No index on period alone: the table holds a handful of rows per organization and period.
    return this.db.prepare('SELECT oid, period, cat, k, v FROM usage_counters WHERE period = ? ORDER BY oid, cat, k').all(period) as UsageAmount[];
  }

  unclosedUsagePeriods(before: number): number[] {
    return this.db
      .prepare('SELECT DISTINCT c.period FROM usage_counters c WHERE c.period < ? AND NOT EXISTS (SELECT 1 FROM usage_periods p WHERE p.period = c.period) ORDER BY c.period')
      .pluck()
      .all(before) as number[];
  }

  closeUsagePeriod(period: number, events: ReadonlyArray<StoredEvent>, at: number): boolean {
    const mark = this.db.prepare('INSERT INTO usage_periods (period, closed) VALUES (?, ?) ON CONFLICT (period) DO NOTHING');
    const insert = this.db.prepare('INSERT INTO events (oid, sid, event_type, event_time, event_id, json, stream) VALUES (?, ?, ?, ?, ?, ?, ?)');
    return guarded(() =>
      this.db.transaction(() => {
        if (mark.run(period, at).changes === 0) return false;
        for (const e of events) insert.run(e.oid, e.sid, e.event_type, e.event_time, e.event_id, e.json, e.stream ?? null);
        return true;
      }).immediate(),
    );
  }

  getScheduleMarks(): Record<string, number> {
    const rows = this.db.prepare('SELECT frequency, period FROM schedule_marks').all() as Array<{ frequency: string; period: number }>;
    return Object.fromEntries(rows.map((r) => [r.frequency, r.period]));
  }

  claimSchedulePeriod(frequency: string, period: number): boolean {
    return guarded(() =>
      this.db
        .prepare('INSERT INTO schedule_marks (frequency, period) VALUES (?, ?) ON CONFLICT (frequency) DO UPDATE SET period = excluded.period WHERE excluded.period > schedule_marks.period')
        .run(frequency, period).changes > 0,
    );
  }

  listSensorsSeenSince(since: number): SensorRecord[] {
    const rows = this.db
      .prepare(
        'SELECT s.*, (SELECT json_group_array(t.tag ORDER BY t.tag) FROM sensor_tags t WHERE t.sid = s.sid AND (t.expires IS NULL OR t.expires > ?)) AS tags_json' +
          ' FROM sensors s WHERE s.alive IS NOT NULL AND s.alive >= ? AND s.deleted IS NULL ORDER BY s.oid, s.sid',
      )
      .all(Date.now(), since) as SensorRow[];
    return rows.map(toSensor);
  }
}
