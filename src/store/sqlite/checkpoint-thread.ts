// WAL checkpoints on a thread of their own. SQLite copies the WAL back into the database file (a
// checkpoint) on the connection that commits, once the WAL holds `wal_autocheckpoint` pages: the group
// commit that crosses the threshold then also writes up to 40 MiB to the database file and fsyncs it, and
// every batch behind it waits (at half load it was most of the acknowledgement's p99). This thread looks
// at the WAL every 50 ms and runs PASSIVE checkpoints on its own connection once it holds as many pages;
// the append thread keeps a threshold several times higher as a fallback, reached only when writes never
// pause long enough for the checkpoints to catch up (docs/performance.md). A thread that stops is started
// again.
import { Worker } from 'node:worker_threads';
import { WAL_AUTOCHECKPOINT_PAGES, type SqliteSynchronous } from './connection.js';

/** How often the thread looks at the WAL's size, ms. */
export const CHECKPOINT_INTERVAL_MS = 50;

/**
 * A thread that stopped on its own is started again after this long, doubling up to the maximum while it
 * keeps stopping (a thread that ran that long starts from the first delay again). Until then the append
 * thread's fallback threshold keeps the WAL bounded, at the price of checkpoints inside commits.
 */
export const CHECKPOINT_RESTART_DELAY_MS = 1_000;
export const CHECKPOINT_RESTART_MAX_DELAY_MS = 60_000;

export class CheckpointThread {
  private worker!: Worker;
  private exited!: Promise<void>;
  private closing = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartDelayMs = CHECKPOINT_RESTART_DELAY_MS;
  private readonly workerData: { path: string; synchronous: SqliteSynchronous; intervalMs: number; thresholdPages: number };
  /** Times the thread was started again after it stopped on its own. */
  restarts = 0;

  /** `onError`: a failed checkpoint, or the thread stopping (it is then started again). */
  constructor(
    private readonly workerFile: string,
    path: string,
    synchronous: SqliteSynchronous,
    private readonly onError: (message: string) => void,
  ) {
    this.workerData = { path, synchronous, intervalMs: CHECKPOINT_INTERVAL_MS, thresholdPages: WAL_AUTOCHECKPOINT_PAGES };
    this.start();
  }

  private start(): void {
    const worker = new Worker(this.workerFile, { workerData: this.workerData });
    const startedAt = Date.now();
    worker.on('message', (m: { error?: string }) => {
      if (m.error) this.onError(m.error);
    });
    worker.on('error', (err) => this.onError(err.message));
    this.exited = new Promise((resolve) => worker.once('exit', (code: number) => {
      resolve();
      if (this.closing) return;
      if (Date.now() - startedAt >= CHECKPOINT_RESTART_MAX_DELAY_MS) this.restartDelayMs = CHECKPOINT_RESTART_DELAY_MS;
      this.scheduleRestart(`the checkpoint thread stopped (exit code ${code})`);
    }));
    // Never keeps the process alive on its own.
    worker.unref();
    this.worker = worker;
  }

  private scheduleRestart(why: string): void {
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(delay * 2, CHECKPOINT_RESTART_MAX_DELAY_MS);
    this.onError(`${why}; starting it again in ${delay} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closing) return;
      try {
        this.start();
        this.restarts++;
      } catch (err) {
        // A thread that cannot even be created (its script gone in an upgrade under way) is tried again later.
        this.scheduleRestart(`the checkpoint thread could not be started: ${(err as Error).message}`);
      }
    }, delay);
    this.restartTimer.unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.worker.postMessage('close');
    await this.exited;
  }

  /** Ends the thread at once, as a crash would (for tests of its restart). */
  async kill(): Promise<void> {
    const exited = this.exited;
    await this.worker.terminate();
    await exited;
  }
}
