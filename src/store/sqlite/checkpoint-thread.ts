// WAL checkpoints on a thread of their own. SQLite copies the WAL back into the database file (a
// checkpoint) on the connection that commits, once the WAL holds `wal_autocheckpoint` pages: the group
// commit that crosses the threshold then also writes up to 40 MiB to the database file and fsyncs it, and
// every batch behind it waits (at half load it was most of the acknowledgement's p99). This thread looks
// at the WAL every 50 ms and runs PASSIVE checkpoints on its own connection once it holds as many pages;
// the append thread keeps a threshold several times higher as a fallback, reached only when writes never
// pause long enough for the checkpoints to catch up (docs/performance.md).
import { Worker } from 'node:worker_threads';
import { WAL_AUTOCHECKPOINT_PAGES, type SqliteSynchronous } from './connection.js';

/** How often the thread looks at the WAL's size, ms. */
export const CHECKPOINT_INTERVAL_MS = 50;

export class CheckpointThread {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(workerFile: string, path: string, synchronous: SqliteSynchronous, onError: (message: string) => void) {
    this.worker = new Worker(workerFile, { workerData: { path, synchronous, intervalMs: CHECKPOINT_INTERVAL_MS, thresholdPages: WAL_AUTOCHECKPOINT_PAGES } });
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error) onError(m.error);
    });
    this.worker.on('error', (err) => onError(err.message));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    // Never keeps the process alive on its own.
    this.worker.unref();
  }

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await this.exited;
  }
}
