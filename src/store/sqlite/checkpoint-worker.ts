// The checkpoint thread's body (see checkpoint-thread.ts): its own connection to the store's file, copying
// the WAL's committed pages back into the database file while the append thread keeps committing. A
// PASSIVE checkpoint never takes the write lock, so no commit waits for it.
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, type SqliteSynchronous } from './connection.js';

const { path, synchronous, intervalMs, thresholdPages } = workerData as { path: string; synchronous: SqliteSynchronous; intervalMs: number; thresholdPages: number };
const port = parentPort!;
const db = openDatabase(path, synchronous);
// This connection never writes; it checkpoints only when the WAL has grown (below).
db.pragma('wal_autocheckpoint = 0');

/** Passes in a row at most: each copies what was committed during the one before. */
const MAX_PASSES = 8;

interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * Frames in the WAL now, from the wal-index header at the start of the `-shm` file (SQLite's documented
 * WAL-index format: `mxFrame`, a 32-bit native-order integer at byte 16). Read without a lock, so it can
 * be stale or torn: it only decides when to checkpoint, never what. Infinity when it cannot be read.
 */
const shm = Buffer.alloc(20);
const LITTLE_ENDIAN = endianness() === 'LE';
let shmFd: number | null = null;
function walFrames(): number {
  try {
    shmFd ??= openSync(`${path}-shm`, 'r');
    if (readSync(shmFd, shm, 0, 20, 0) < 20) return Infinity;
    return LITTLE_ENDIAN ? shm.readUInt32LE(16) : shm.readUInt32BE(16);
  } catch {
    return Infinity;
  }
}

/**
 * Copies what the WAL holds, then again (at once) what was committed meanwhile, until everything is
 * copied: a writer that starts its next transaction then finds the WAL fully copied and writes it again
 * from the beginning, so the file stays small without a commit ever paying for a checkpoint.
 */
function checkpoint(): void {
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const row = (db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[])[0];
    if (!row || row.busy !== 0 || row.log <= row.checkpointed) return;
  }
}

// Only once the WAL holds `thresholdPages` frames, as SQLite's own automatic checkpoint would: copying a
// few hot pages back again and again (and fsyncing the database file each time) costs the commits' fsyncs.
const timer = setInterval(() => {
  try {
    if (walFrames() >= thresholdPages) checkpoint();
  } catch (err) {
    // A failed checkpoint loses nothing (the pages are still in the WAL); the writer's own fallback
    // checkpoint keeps the WAL bounded. Tell the main thread, which logs it.
    port.postMessage({ error: (err as Error).message });
  }
}, intervalMs);

port.on('message', (message: 'close') => {
  if (message !== 'close') return;
  clearInterval(timer);
  if (shmFd !== null) closeSync(shmFd);
  db.close();
  port.close();
});
