// Monthly partitions of the events table, created on demand.
//
// events is range-partitioned on event_time (migrations.ts). Every UTC month from 2000 to 2100 gets its own
// partition, named events_yYYYYmMM, the first time an event of that month is appended (and the current
// and next month at every migrate(), so the usual append never creates one). Event times outside that
// span (a sensor with a clock at 1970, or a far-future one) land in the two catch-all partitions the
// migration created, so a broken clock can never make more than 1,200 partitions.
//
// Creation runs in its own short transaction before the append (never inside it): the new table is
// created empty with the columns of events and then ATTACHed, which takes a SHARE UPDATE EXCLUSIVE lock
// on events (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE): reads and appends of other
// months go on meanwhile; attaching builds the partition's copies of the indexes on an empty table, which
// is instant. Concurrent creators (several nodes) are serialised by an advisory lock and re-check under it.
//
// Which months exist is cached per store. Retention drops whole months from outside (ALTER TABLE events
// DETACH PARTITION events_y2023m01 CONCURRENTLY; DROP TABLE events_y2023m01): an append of a late event
// into a dropped month then fails with "no partition ... found for row"; the caller forgets the cache and
// retries once, which re-creates the month (see PostgresStore.appendEvents). A detached partition must be
// dropped or renamed, or re-creating its month fails.
import type pg from 'pg';
import { LOCK, lockXact, withTransaction } from './connection.js';
import { MONTHLY_FROM, MONTHLY_UNTIL } from './migrations.js';

export interface MonthPartition {
  name: string;
  /** Inclusive lower bound, Unix ms (the first instant of the month, UTC). */
  from: number;
  /** Exclusive upper bound (the first instant of the next month). */
  until: number;
}

/** The monthly partition an event time belongs to, or null when it falls in a catch-all partition. */
export function monthOf(time: number): MonthPartition | null {
  if (!(time >= MONTHLY_FROM && time < MONTHLY_UNTIL)) return null;
  const d = new Date(time);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth();
  return {
    name: `events_y${year}m${String(month + 1).padStart(2, '0')}`,
    from: Date.UTC(year, month, 1),
    until: Date.UTC(year, month + 1, 1),
  };
}

/** True when the insert failed because no partition accepts a row (its month was dropped meanwhile). */
export function isMissingPartition(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '23514' && typeof e.message === 'string' && e.message.includes('no partition');
}

export class EventPartitions {
  /** Lower bounds of the monthly partitions known to exist. */
  private readonly known = new Set<number>();
  /** The month of the last event checked: a batch is nearly always all in one month. */
  private hot: MonthPartition | null = null;

  constructor(private readonly pool: pg.Pool) {}

  /** Makes sure every time has a partition to go to, creating missing months. */
  async ensure(times: Iterable<number>): Promise<void> {
    const missing = new Map<number, MonthPartition>();
    for (const t of times) {
      const hot = this.hot;
      if (hot && t >= hot.from && t < hot.until) continue;
      const month = monthOf(t);
      if (!month) continue;
      if (this.known.has(month.from)) {
        this.hot = month;
        continue;
      }
      missing.set(month.from, month);
    }
    for (const month of missing.values()) {
      await this.create(month);
      this.known.add(month.from);
      this.hot = month;
    }
  }

  /**
   * Runs an appending transaction `append` after making sure its event times have partitions. When it
   * fails because a cached month was dropped meanwhile (retention), forgets the cache, re-creates the
   * month and runs it once more (the failed transaction was rolled back whole).
   */
  async appending<T>(times: ReadonlyArray<number>, append: () => Promise<T>): Promise<T> {
    await this.ensure(times);
    try {
      return await append();
    } catch (err) {
      if (!isMissingPartition(err)) throw err;
      this.forget();
      await this.ensure(times);
      return append();
    }
  }

  /** Forgets what is cached (after a partition was dropped behind this store's back). */
  forget(): void {
    this.known.clear();
    this.hot = null;
  }

  private async create(month: MonthPartition): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      await lockXact(client, LOCK.partitions);
      const { rowCount } = await client.query(
        "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass AND c.relname = $1",
        [month.name],
      );
      if (rowCount) return;
      // Names and bounds come from monthOf(): digits and a fixed prefix, nothing to quote.
      await client.query(`CREATE TABLE ${month.name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      await client.query(`ALTER TABLE events ATTACH PARTITION ${month.name} FOR VALUES FROM (${month.from}) TO (${month.until})`);
    });
  }
}
