// Forgets sensors deleted more than 30 days ago (decisions.md §3): their records, tags, sequence marks and
// notices go; their stored events stay. A forgotten sensor that comes back is told to enroll anew.
import type { Logger } from '../observability/logger.js';
import { DENIED_FOR_MS } from '../protocol/close-codes.js';
import type { Store } from '../store/store.js';

const BATCH = 500;

export class DeletedSensorJanitor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<string[]> | null = null;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep().catch((err: unknown) => this.logger.error({ err }, 'forgetting deleted sensors failed')), this.intervalMs);
    this.timer.unref();
  }

  /** One sweep now; returns the sids forgotten. Concurrent calls share the running sweep. */
  sweep(): Promise<string[]> {
    this.running ??= this.forget().finally(() => (this.running = null));
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async forget(): Promise<string[]> {
    const cutoff = this.now() - DENIED_FOR_MS;
    const forgotten: string[] = [];
    for (;;) {
      const sids = await this.store.forgetDeletedSensors(cutoff, BATCH);
      forgotten.push(...sids);
      if (sids.length < BATCH) break;
    }
    if (forgotten.length > 0) this.logger.info({ count: forgotten.length, deleted_before: new Date(cutoff).toISOString() }, 'forgot sensors deleted 30 days ago');
    return forgotten;
  }
}
