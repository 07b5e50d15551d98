// The adapter's state directory, in one place: which files it holds, the lock that keeps two adapters
// from sharing it, and the checkpoint file written atomically.
//
//   <state-dir>/lock             pid of the adapter using the directory
//   <state-dir>/checkpoint.json  instance_id, sequence numbers, released watermark, source positions
//   <state-dir>/journal.bin      append-only records since the checkpoint (journal.ts)
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { isUuid } from '../domain/ids.js';

export interface StatePaths {
  dir: string;
  lock: string;
  checkpoint: string;
  journal: string;
  /** Where a compaction writes the next journal before renaming it over the current one. */
  journalNext: string;
}

export function statePaths(dir: string): StatePaths {
  const abs = path.resolve(dir);
  return {
    dir: abs,
    lock: path.join(abs, 'lock'),
    checkpoint: path.join(abs, 'checkpoint.json'),
    journal: path.join(abs, 'journal.bin'),
    journalNext: path.join(abs, 'journal.bin.next'),
  };
}

export class StateDirError extends Error {
  override readonly name = 'StateDirError';
}

/** Everything the journal does not say: rewritten on compaction and every `reserve` sequence numbers. */
export interface Checkpoint {
  version: 1;
  /** The USP instance_id: the sequence space of this state directory. */
  instance_id: string;
  /** Every message with x <= released_x is acknowledged or dropped. */
  released_x: number;
  /** Highest x given to a message. */
  last_x: number;
  /** Highest x that may have been given to a message: never reused, even if the journal's tail is lost. */
  reserved_x: number;
  /** Source positions (file tailers), by source key. */
  cursors: Record<string, unknown>;
  /** What the directory was used for, to warn when it is reused for another sensor. */
  oid?: string;
  sensor_seed_key?: string;
}

const FILE_MODE = 0o600;

/** Creates the directory (private) and takes its lock; a lock of a live process is an error. */
export function lockStateDir(paths: StatePaths): () => void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(paths.lock, 'wx', FILE_MODE);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw new StateDirError(`cannot lock ${paths.lock}: ${(err as Error).message}`);
      const holder = Number(readTextOr(paths.lock, '').trim());
      if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
        throw new StateDirError(`state directory ${paths.dir} is in use by process ${holder}; give each adapter its own --state-dir`);
      }
      // Left by an adapter that was killed: take it over.
      unlinkSync(paths.lock);
    }
  }
  return () => {
    try {
      if (Number(readTextOr(paths.lock, '').trim()) === process.pid) unlinkSync(paths.lock);
    } catch {
      // already gone
    }
  };
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readTextOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

export function readCheckpoint(paths: StatePaths): Checkpoint | undefined {
  let text: string;
  try {
    text = readFileSync(paths.checkpoint, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateDirError(`cannot read ${paths.checkpoint}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StateDirError(`${paths.checkpoint} is not JSON (${(err as Error).message}); move the state directory away to start over`);
  }
  const c = value as Partial<Checkpoint> | null;
  const count = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!c || c.version !== 1 || typeof c.instance_id !== 'string' || !isUuid(c.instance_id) || !count(c.released_x) || !count(c.last_x) || !count(c.reserved_x) || typeof c.cursors !== 'object' || c.cursors === null) {
    throw new StateDirError(`${paths.checkpoint} is not a valid adapter checkpoint; move the state directory away to start over`);
  }
  return c as Checkpoint;
}

/** Replaces the checkpoint atomically and durably: temporary file, fsync, rename, fsync of the directory. */
export function writeCheckpoint(paths: StatePaths, checkpoint: Checkpoint): void {
  const tmp = `${paths.checkpoint}.tmp`;
  const fd = openSync(tmp, 'w', FILE_MODE);
  try {
    writeSync(fd, JSON.stringify(checkpoint) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, paths.checkpoint);
  syncDirectory(paths.dir);
}

/** Makes a rename in `dir` durable (a no-op where directories cannot be opened, e.g. Windows). */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported here
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
