// Last-seen times of sensors, kept in memory and written to the store in one batch per interval
// (decisions.md §6: heartbeats must not write the database one by one).
import type { Logger } from '../observability/logger.js';
import type { Store } from '../store/store.js';

export class AliveTracker {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly flushIntervalMs: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  touch(sid: string, at: number): void {
    this.pending.set(sid, at);
  }

  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = [...this.pending].map(([sid, alive]) => ({ sid, alive }));
    this.pending = new Map();
    this.flushing = this.store.touchAlive(batch).then(
      () => undefined,
      (err: unknown) => {
        this.logger.warn({ err, sensors: batch.length }, 'could not persist alive times; will retry');
        for (const { sid, alive } of batch) if (!this.pending.has(sid)) this.pending.set(sid, alive);
      },
    );
    await this.flushing;
    this.flushing = null;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
