// One Picket process per data directory. Two servers on one directory would both append to the log, both
// deliver every output from the same cursors and both sweep the same artifacts; the second one to start
// is refused instead. The lock is an operating-system lock (SQLite's, on the small file `picket.lock`):
// it goes with the process however that ends, so a crash or a kill -9 never leaves a stale lock behind.
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';

export const LOCK_FILE = 'picket.lock';

/** Who holds a data directory, as the holder wrote it when it took the lock. */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** When the holder took the lock (ms since the epoch). */
  since: number;
}

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  constructor(readonly dataDir: string, readonly holder: LockHolder | null) {
    super(
      `the data directory ${dataDir} is in use by another Picket process` +
        (holder ? ` (pid ${holder.pid} on ${holder.hostname}, since ${new Date(holder.since).toISOString()})` : '') +
        ': stop it first, or give this one another data directory (--data / PICKET_DATA_DIR)',
    );
  }
}

/**
 * Held for the life of a server. The holder keeps a write transaction open on the lock file (SQLite's
 * RESERVED lock): another process, or another connection in this one, can still read who holds it but
 * cannot begin a write, which is how a second server learns that the directory is taken.
 */
export class DataDirLock {
  private constructor(private db: Database.Database | null, readonly file: string) {}

  /** Takes the lock on `dataDir` (which must exist), or throws DataDirInUseError naming the holder. */
  static acquire(dataDir: string, now: number = Date.now()): DataDirLock {
    const file = path.join(dataDir, LOCK_FILE);
    // timeout 0: a held lock answers SQLITE_BUSY at once instead of after better-sqlite3's 5-s wait.
    const db = new Database(file, { timeout: 0 });
    try {
      db.exec('CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, hostname TEXT NOT NULL, since INTEGER NOT NULL)');
      db.exec('BEGIN IMMEDIATE');
      db.prepare('INSERT OR REPLACE INTO holder (id, pid, hostname, since) VALUES (1, ?, ?, ?)').run(process.pid, os.hostname(), now);
      db.exec('COMMIT');
      // Between the commit and this begin another process can take the lock; then it holds it and this
      // one is refused below, naming that process: only ever one holder.
      db.exec('BEGIN IMMEDIATE');
      return new DataDirLock(db, file);
    } catch (err) {
      const holder = isBusy(err) ? readHolder(db) : null;
      db.close();
      if (isBusy(err)) throw new DataDirInUseError(dataDir, holder);
      throw err;
    }
  }

  /** Gives the directory up (idempotent). The process ending does the same. */
  release(): void {
    const db = this.db;
    this.db = null;
    if (!db) return;
    try {
      db.exec('ROLLBACK');
    } finally {
      db.close();
    }
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

function readHolder(db: Database.Database): LockHolder | null {
  try {
    if (db.inTransaction) db.exec('ROLLBACK');
    const row = db.prepare('SELECT pid, hostname, since FROM holder WHERE id = 1').get() as LockHolder | undefined;
    return row ?? null;
  } catch {
    return null;
  }
}
