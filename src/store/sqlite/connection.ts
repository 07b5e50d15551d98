// Opening the SQLite file with the settings the store relies on, and turning SQLite's constraint errors
// into the backend-neutral store errors.
import Database from 'better-sqlite3';
import { StoreConflictError, StoreNotFoundError } from '../errors.js';

export type SqliteSynchronous = 'full' | 'normal';

/**
 * Pages in the WAL before a commit copies them back into the database file (SQLite's default is 1,000).
 * Group commits from many sensors rewrite the same index pages (each sensor's latest leaf) again and
 * again: with a larger WAL a checkpoint writes each of them once for many commits. Measured at half load
 * (100 sensors, 30,000 events/s, synchronous=FULL): durable-ack latency p50 88 → 40 ms, p99 180 → 115 ms,
 * and 10–20 % more events/s at full load; 40,000 pages gained no more and lengthened the tail.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/**
 * The append thread's own checkpoint threshold while the checkpoint thread runs (checkpoint-thread.ts):
 * reached only when commits follow each other so closely that the thread's checkpoints never catch up
 * (at full load). Most of the WAL is copied by then, so the fallback checkpoint itself is short.
 */
export const WAL_FALLBACK_CHECKPOINT_PAGES = 40_000;

/**
 * The WAL file's size past which SQLite shortens it when the WAL starts over from its first frame. The WAL
 * normally starts over at up to WAL_FALLBACK_CHECKPOINT_PAGES frames (the append thread's fallback, which
 * the checkpoint thread's copies reach under steady small commits, such as 1,000 tasks/s); shortening the
 * file there costs the commit that starts it over the release of every page dropped (13 ms of CPU and
 * 20 ms blocked for 100 MiB, measured), and the next frames then grow the file again. So the limit sits
 * above that size and only a WAL grown past it by one very large transaction is shortened back to it.
 */
export function walSizeLimitBytes(pageSize: number): number {
  const WAL_HEADER_BYTES = 32;
  const FRAME_HEADER_BYTES = 24;
  return WAL_HEADER_BYTES + (WAL_FALLBACK_CHECKPOINT_PAGES + WAL_AUTOCHECKPOINT_PAGES) * (pageSize + FRAME_HEADER_BYTES);
}

/**
 * Durability: the database runs in WAL mode. With synchronous=FULL every commit fsyncs the WAL before
 * returning, so a commit that returned (an acknowledged batch) survives a process crash, an OS crash and
 * power loss. With synchronous=NORMAL the WAL is fsynced only at checkpoints: a returned commit survives
 * a process crash (it is in the OS page cache) but the last commits can be lost on power loss or an OS
 * crash. In both modes the database is never corrupted.
 */
export function openDatabase(file: string, synchronous: SqliteSynchronous): Database.Database {
  const db = new Database(file);
  try {
    // Wait for another connection's lock (a CLI reading the file, a second process migrating)
    // instead of failing at once with SQLITE_BUSY.
    db.pragma('busy_timeout = 5000');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal' && file !== ':memory:') {
      throw new Error(`SQLite could not switch ${file} to WAL mode (got "${String(mode)}"); is it on a network filesystem?`);
    }
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    // 64 MiB page cache (negative = KiB): the timeline indexes of active sensors stay hot.
    db.pragma('cache_size = -65536');
    db.pragma('temp_store = MEMORY');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${walSizeLimitBytes(db.pragma('page_size', { simple: true }) as number)}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** Maps uniqueness and foreign-key violations to StoreConflictError / StoreNotFoundError. */
export function translateError(err: unknown): unknown {
  if (!(err instanceof Database.SqliteError)) return err;
  switch (err.code) {
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case 'SQLITE_CONSTRAINT_UNIQUE':
      return new StoreConflictError(`already exists (${err.message})`, { cause: err });
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
      return new StoreNotFoundError('the referenced organization or sensor does not exist', { cause: err });
    default:
      return err;
  }
}

/** Runs `fn`, rethrowing SQLite errors as store errors where one applies. */
export function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw translateError(err);
  }
}
