// The delivery loop of one output. Its durable queue is the event log: the worker reads the stored events
// of its organization and stream after its cursor, filters and shapes them, hands a batch to its module,
// and only when the module has delivered it moves the cursor (at least once, in log order, which keeps
// every sensor's order). A failing destination is retried with exponential backoff and jitter, then
// paused; its last error is kept for GET /v1/errors/{oid}. A failing queue (the store or the bus
// unreachable, a consumer gone) is retried with backoff and reopened; the worker never stops on it. Each output has its own loop, so a slow or dead
// destination holds back nothing but itself, and ingestion never waits for any output.
import type { OutputConfig } from '../../domain/outputs.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { LogRow, Store } from '../../store/store.js';
import type { OutputQueue } from './output-queue.js';
import { PartialDeliveryError, type OutputModule, type OutputRecord } from './output-module.js';
import { compileFilter, isPlainShape, shapeRecord, StoredLogEvent, type RecordFilter } from './record-filter.js';
import type { OutputUsage } from '../../services/usage-meter.js';

/** A record sent as stored: its JSON is the stored text, its body parsed only if a module asks. */
class PlainRecord implements OutputRecord {
  readonly seq: number;
  readonly oid: string;
  readonly sid: string | null;
  readonly event_type: string;
  readonly json: string;

  constructor(private readonly event: StoredLogEvent) {
    this.seq = event.seq;
    this.oid = event.oid;
    this.sid = event.sid;
    this.event_type = event.event_type;
    this.json = event.json;
  }

  get event_time(): number {
    return this.event.eventTime;
  }

  get body(): Record<string, unknown> {
    return this.event.envelope;
  }
}

export interface DeliveryPolicy {
  retryBaseMs: number;
  retryCapMs: number;
  /** Consecutive failures after which the output pauses for pauseMs. */
  pauseAfter: number;
  pauseMs: number;
  queueLimit: number;
  overflow: 'keep' | 'drop_oldest';
  /** How often an idle worker looks at the log without being woken, ms. */
  idlePollMs: number;
}

export interface OutputWorkerDeps {
  /** Org errors (GET /v1/errors). */
  store: Store;
  /** What to deliver, and where delivery resumes (the event log on one node, a JetStream consumer in a cluster). */
  queue: OutputQueue;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
  policy: DeliveryPolicy;
  /** Usage metering: bytes delivered per output (billing). */
  usage?: OutputUsage;
}

export type OutputState = 'running' | 'retrying' | 'paused' | 'stopped';

export interface OutputStatus {
  state: OutputState;
  cursor: number;
  failures: number;
  last_error: string | null;
  last_error_at: number | null;
  /** When a retrying or paused output tries again, Unix ms. */
  retry_at: number | null;
}

/** Longest time a delivered position waits before it is written to the store. */
const CURSOR_PERSIST_MS = 500;

/**
 * Rows read from the log per step, at least: enough for a full batch even when filters drop most of
 * them. A module that takes larger batches gets pages of its batch size (each batch costs it a flush).
 */
const READ_PAGE = 2000;

/** Retry of a failed queue (store or bus unreachable): from 1 s, doubling up to 30 s. */
const QUEUE_RETRY_BASE_MS = 1000;
const QUEUE_RETRY_CAP_MS = 30_000;

/** How often the queue bound is checked, ms (counting the backlog is not free). */
const QUEUE_CHECK_MS = 1000;
/** With PICKET_OUTPUT_OVERFLOW=keep, how often a backlog over the limit is counted exactly, ms. */
const KEEP_EXACT_COUNT_MS = 30_000;

export class OutputWorker {
  private readonly filter: RecordFilter;
  /** No shape option: records go out as stored, without parsing them. */
  private readonly plain: boolean;
  private readonly component: string;
  private cursor = 0;
  private state: OutputState = 'running';
  private failures = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private retryAt: number | null = null;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private loop: Promise<void> | null = null;
  /** When the current partial batch (fewer than maxRecords) was first seen: the batching wait runs from there. */
  private partialSince: number | null = null;
  private lagWarned = false;
  private persistedAt = -Infinity;
  private persistPending = false;
  /** The cursor write under way (one at a time, off the delivery path). */
  private persisting: Promise<void> | null = null;
  /** A cursor write that failed: the queue's failure, raised at the next step. */
  private persistError: Error | null = null;
  /** Events skipped over the queue limit since this worker started (drop_oldest), repeated in every error. */
  private skipped = 0;
  private queueCheckedAt = -Infinity;
  /** Queue failures in a row (the store or bus, not the destination). */
  private queueFailures = 0;
  private exactCountAt = -Infinity;
  private lastExactLag = 0;

  constructor(
    readonly config: OutputConfig,
    private readonly module: OutputModule,
    private readonly deps: OutputWorkerDeps,
  ) {
    this.filter = compileFilter(config.filters);
    this.plain = isPlainShape(config.shape);
    this.component = `outputs/${config.name}`;
  }

  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      this.deps.logger.error({ err, oid: this.config.oid, output: this.config.name }, 'output worker crashed');
      this.state = 'stopped';
    });
  }

  /** New events may be waiting: look now instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Stops: a send in progress gets `graceMs` to finish, then the module is closed (aborting it; its batch
   * stays in the log and is sent again by the next worker).
   */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    this.wake();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loop, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    await this.module.close().catch((err: unknown) => this.deps.logger.warn({ err, output: this.config.name }, 'output module did not close cleanly'));
    await this.loop;
    await this.persistCursor().catch((err: unknown) => this.deps.logger.error({ err, output: this.config.name }, 'could not save the output cursor'));
    await this.deps.queue.close().catch((err: unknown) => this.deps.logger.warn({ err, output: this.config.name }, 'output queue did not close cleanly'));
    if (this.state === 'paused') this.deps.metrics.outputsPaused.dec();
    this.state = 'stopped';
  }

  /** Position in the log up to which this output has delivered. */
  get position(): number {
    return this.cursor;
  }

  /** Records waiting, when the queue knows it without I/O; null otherwise. */
  pendingEstimate(): number | null {
    return this.deps.queue.pendingEstimate?.(this.cursor) ?? null;
  }

  status(): OutputStatus {
    return { state: this.state, cursor: this.cursor, failures: this.failures, last_error: this.lastError, last_error_at: this.lastErrorAt, retry_at: this.retryAt };
  }

  private async run(): Promise<void> {
    const { queue } = this.deps;
    const { oid, name } = this.config;
    queue.onArrival?.(() => this.wake());
    await this.openQueue();
    // The destination may already hold what the cursor had not yet recorded when the node died.
    const held = this.module.resumeAfter ? await this.module.resumeAfter() : null;
    if (held !== null && held > this.cursor) {
      this.deps.logger.info({ oid, output: name, cursor: this.cursor, destination_has: held }, 'output continues after what its destination already holds');
      await this.advance(held);
    }
    while (!this.stopped) {
      try {
        await this.step();
        if (this.queueFailures > 0) {
          this.queueFailures = 0;
          this.deps.logger.info({ oid, output: name }, 'output queue working again');
          if (this.failures === 0) await this.deps.store.clearOrgError(oid, this.component);
        }
      } catch (err) {
        await this.queueFailed(err as Error);
      }
    }
  }

  /** Opens the queue, retrying while it cannot be opened (the store or the bus unreachable). */
  private async openQueue(): Promise<void> {
    for (;;) {
      try {
        // A reopened queue starts at its committed position; what this worker delivered after it is not sent again.
        this.cursor = Math.max(this.cursor, await this.deps.queue.open());
        return;
      } catch (err) {
        await this.queueFailed(err as Error, false);
        if (this.stopped) return;
      }
    }
  }

  /**
   * The queue failed (not the destination): the store or the bus is unreachable, or the output's consumer
   * vanished. Retried with backoff; the queue is closed and opened again, which recreates what it needs.
   */
  private async queueFailed(err: Error, reopen = true): Promise<void> {
    if (this.stopped) return;
    const { logger, metrics, now } = this.deps;
    this.queueFailures++;
    metrics.outputFailures.inc({ module: this.config.module });
    const delay = Math.min(QUEUE_RETRY_CAP_MS, QUEUE_RETRY_BASE_MS * 2 ** (this.queueFailures - 1));
    logger.warn({ err, oid: this.config.oid, output: this.config.name, failures: this.queueFailures, retry_in_ms: delay }, 'output queue failed; reopening it');
    await this.deps.store.recordOrgError({ oid: this.config.oid, component: this.component, error: `queue: ${err.message} (retrying)`, at: now() }).catch(() => undefined);
    await this.sleep(delay, false);
    if (!reopen || this.stopped) return;
    await this.deps.queue.close().catch(() => undefined);
    await this.openQueue();
  }

  /** One round: the queue bound, a read, and a delivery (or a wait when nothing is there). */
  private async step(): Promise<void> {
    const { queue } = this.deps;
    const { oid, name } = this.config;
    this.raisePersistError();
    await this.applyQueueLimit();
    const { maxRecords, maxWaitMs } = this.module.batching;
    const page = Math.max(READ_PAGE, maxRecords);
    let rows = await queue.read(this.cursor, page);
    if (rows.length === 0) {
      // Nothing of this output's stream waits. Positions after the cursor may still hold other streams'
      // events: move past them up to the log's end as read now (then confirmed: nothing of ours before it),
      // so the lag reads 0 when the output is caught up and the next read starts nearer the end.
      const end = await queue.end();
      if (end > this.cursor) {
        rows = await queue.read(this.cursor, page);
        if (rows.length === 0) await this.advance(end);
      }
    }
    if (rows.length === 0) {
      this.partialSince = null;
      this.deps.metrics.outputLag.set({ oid, output: name }, 0);
      // Idle: nothing more is coming right now, so the position is written at once.
      if (this.persistPending) await this.persistCursor();
      await this.sleep(this.deps.policy.idlePollMs);
      return;
    }
    const records: OutputRecord[] = [];
    let through = this.cursor;
    for (const row of rows) {
      const event = new StoredLogEvent(row.seq, row.oid, row.sid, row.event_type, row.json);
      if (this.filter(event)) records.push(this.plain ? new PlainRecord(event) : this.shaped(event));
      through = row.seq;
      if (records.length >= maxRecords) break;
    }
    if (records.length === 0) {
      await this.advance(through);
      return;
    }
    // A partial batch waits (for more records, up to maxWaitMs) when the module batches by time.
    if (records.length < maxRecords && maxWaitMs > 0 && rows.length < page) {
      const now = this.deps.now();
      this.partialSince ??= now;
      const waited = now - this.partialSince;
      if (waited < maxWaitMs) {
        await this.sleep(maxWaitMs - waited, false);
        return;
      }
    }
    await this.deliver(records, through);
  }

  private shaped(event: StoredLogEvent): OutputRecord {
    const body = shapeRecord(event, this.config.shape);
    return { seq: event.seq, oid: event.oid, sid: event.sid, event_type: event.event_type, event_time: event.eventTime, body, json: JSON.stringify(body) };
  }

  private async deliver(records: OutputRecord[], through: number): Promise<void> {
    const { metrics, logger } = this.deps;
    try {
      await this.module.send(records);
    } catch (err) {
      // What the destination took before failing is done: move past it, retry only the rest.
      const delivered = err instanceof PartialDeliveryError ? Math.min(err.delivered, records.length) : 0;
      if (delivered > 0) {
        this.count(records.slice(0, delivered));
        await this.advance(records[delivered - 1]!.seq);
      }
      await this.failed(err as Error);
      return;
    }
    this.count(records);
    this.partialSince = null;
    if (this.failures > 0) {
      logger.info({ oid: this.config.oid, output: this.config.name, after_failures: this.failures }, 'output delivering again');
      // Cleared before the state changes, as failed() records before it does.
      await this.deps.store.clearOrgError(this.config.oid, this.component);
      if (this.state === 'paused') metrics.outputsPaused.dec();
      this.failures = 0;
      this.retryAt = null;
      this.state = 'running';
    }
    await this.advance(through);
  }

  private count(records: ReadonlyArray<OutputRecord>): void {
    this.deps.metrics.outputEventsSent.inc({ module: this.config.module }, records.length);
    let bytes = 0;
    for (const r of records) bytes += Buffer.byteLength(r.json, 'utf8');
    this.deps.metrics.outputBytesSent.inc({ oid: this.config.oid, module: this.config.module }, bytes);
    this.deps.usage?.sent(this.config.oid, this.config.name, bytes);
  }

  /**
   * Moves the cursor. It is written to the store at most every CURSOR_PERSIST_MS (each write is a commit)
   * and when the worker stops; after a crash an output may repeat up to that much (at least once), except
   * the file module, which knows its own position. The write runs beside delivery, one at a time: on one
   * node it is queued behind the group commits under way, which at full load take longer than a batch.
   */
  private async advance(through: number): Promise<void> {
    this.cursor = through;
    const now = performance.now();
    if (this.persisting || now - this.persistedAt < CURSOR_PERSIST_MS) {
      this.persistPending = true;
      return;
    }
    this.startPersist(now);
  }

  private startPersist(now = performance.now()): void {
    this.persistedAt = now;
    this.persistPending = false;
    // Every batch up to this position was delivered before the module's record is synced (module.syncPosition).
    const seq = this.cursor;
    const synced = this.module.syncPosition?.() ?? Promise.resolve();
    this.persisting = synced.then(() => this.deps.queue.commit(seq)).then(
      () => void (this.persisting = null),
      (err: unknown) => {
        this.persisting = null;
        this.persistPending = true;
        this.persistError ??= err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /**
   * Waits for the cursor write under way, then writes the position delivered since if it moved (again
   * after a write that failed); throws if the last write failed.
   */
  private async persistCursor(): Promise<void> {
    if (this.persisting) await this.persisting;
    if (this.persistPending) {
      this.persistError = null;
      this.startPersist();
      await this.persisting;
    }
    this.raisePersistError();
  }

  private raisePersistError(): void {
    const err = this.persistError;
    this.persistError = null;
    if (err) throw err;
  }

  private async failed(err: Error): Promise<void> {
    // A send aborted by stop() is not the destination's fault.
    if (this.stopped) return;
    const { metrics, logger, policy, now } = this.deps;
    const failures = this.failures + 1;
    const lastError = err.message || String(err);
    const at = now();
    metrics.outputFailures.inc({ module: this.config.module });
    const paused = failures >= policy.pauseAfter;
    // Full jitter over an exponentially growing ceiling, or the pause.
    const ceiling = Math.min(policy.retryCapMs, policy.retryBaseMs * 2 ** (failures - 1));
    const delay = paused ? policy.pauseMs : ceiling / 2 + Math.random() * (ceiling / 2);
    const skipped = this.skipped > 0 ? `; ${this.skipped} undelivered events skipped over the queue limit` : '';
    // The error is recorded before the state changes: whoever sees the new state finds its error too.
    await this.deps.store.recordOrgError({
      oid: this.config.oid, component: this.component,
      error: `${lastError} (${failures} failure${failures === 1 ? '' : 's'} in a row; ${paused ? 'paused' : 'retrying'}${skipped})`, at,
    }).catch((recordErr: unknown) => logger.error({ err: recordErr, oid: this.config.oid, output: this.config.name }, 'could not record the output error'));
    if (paused && this.state !== 'paused') metrics.outputsPaused.inc();
    this.failures = failures;
    this.lastError = lastError;
    this.lastErrorAt = at;
    this.state = paused ? 'paused' : 'retrying';
    this.retryAt = at + delay;
    logger.warn({ oid: this.config.oid, output: this.config.name, failures, retry_in_ms: Math.round(delay), state: this.state, error: lastError }, 'output delivery failed');
    await this.sleep(delay, false);
  }

  /** The queue bound (PICKET_OUTPUT_QUEUE_LIMIT): warn, or skip ahead and count what was skipped. */
  private async applyQueueLimit(): Promise<void> {
    const { queue, policy, metrics, logger } = this.deps;
    const now = performance.now();
    if (now - this.queueCheckedAt < QUEUE_CHECK_MS) return;
    this.queueCheckedAt = now;
    // Counting a long backlog exactly reads every row of it: every time when the count decides what to
    // skip (drop_oldest); with keep, a bound by log positions is enough most of the time.
    const exact = policy.overflow === 'drop_oldest' || now - this.exactCountAt >= KEEP_EXACT_COUNT_MS;
    let lag = await queue.backlog(this.cursor, policy.queueLimit, exact);
    if (exact) {
      this.exactCountAt = now;
      this.lastExactLag = lag;
    } else if (lag > policy.queueLimit) {
      // A bound over the limit says little (other organizations' events count in it): keep the last exact figure.
      lag = this.lastExactLag;
    }
    metrics.outputLag.set({ oid: this.config.oid, output: this.config.name }, lag);
    if (lag <= policy.queueLimit) {
      this.lagWarned = false;
      return;
    }
    if (policy.overflow === 'keep') {
      if (!this.lagWarned) logger.warn({ oid: this.config.oid, output: this.config.name, lag, limit: policy.queueLimit }, 'output is over its queue limit; keeping everything (PICKET_OUTPUT_OVERFLOW=keep)');
      this.lagWarned = true;
      return;
    }
    const from = this.cursor;
    const { through, dropped } = await this.skip(lag - policy.queueLimit);
    metrics.outputDropped.inc({ oid: this.config.oid, output: this.config.name }, dropped);
    this.skipped += dropped;
    const message = `queue over its limit of ${policy.queueLimit} events: skipped ${dropped} undelivered events (PICKET_OUTPUT_OVERFLOW=drop_oldest)`;
    logger.error({ oid: this.config.oid, output: this.config.name, dropped, from, to: through }, message);
    await this.deps.store.recordOrgError({ oid: this.config.oid, component: this.component, error: message, at: this.deps.now() });
    await this.advance(through);
  }

  /**
   * Moves past the oldest `n` queued records; returns the position after them and how many of them this
   * output would have delivered (its filters applied): what the skip drops.
   */
  private async skip(n: number): Promise<{ through: number; dropped: number }> {
    let through = this.cursor;
    let seen = 0;
    let dropped = 0;
    while (seen < n) {
      // A turn of the event loop between pages: a skip can read millions of rows.
      if (seen > 0) await new Promise((resolve) => setImmediate(resolve));
      const rows: LogRow[] = await this.deps.queue.read(through, Math.min(10_000, n - seen));
      if (rows.length === 0) break;
      for (const row of rows) {
        if (this.filter(new StoredLogEvent(row.seq, row.oid, row.sid, row.event_type, row.json))) dropped++;
        through = row.seq;
      }
      seen += rows.length;
    }
    return { through, dropped };
  }

  /** Waits `ms`, or less when woken (new events) unless `wakeable` is false; always ends early on stop(). */
  private sleep(ms: number, wakeable = true): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (wakeable && this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        if (this.stopped || wakeable) {
          this.wakeUp = null;
          this.woken = false;
          done();
        }
      };
    });
  }
}
