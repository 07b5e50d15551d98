// Group commit: every producer (sensor sessions, the platform's own event sources) submits events here;
// submissions that arrive while a commit is running are written together in the next transaction. A
// submission's promise resolves only after its events (and sequence mark) are durable, which is when a
// sensor may be acknowledged. Submissions are committed in arrival order, so per-sensor order holds.
import type { BusEvent, EventBus, StreamName } from '../bus/event-bus.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TaskRecord } from '../domain/records.js';
import type { MarkedBatch, SequenceMark, Store, StoredEvent, TaskUpdate, TaskWrites } from '../store/store.js';

export interface PipelineEvent extends StoredEvent {
  stream: StreamName | null;
}

interface Submission {
  events: ReadonlyArray<PipelineEvent>;
  mark: SequenceMark | undefined;
  tasks: TaskWrites | undefined;
  resolve: () => void;
  reject: (err: Error) => void;
  /** performance.now() at submission. */
  at: number;
}

export class EventWriter {
  private queue: Submission[] = [];
  private queuedEvents = 0;
  private committing: Promise<void> | null = null;
  /** Submission time of the oldest submission in the commit under way. */
  private committingSince: number | null = null;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly maxEventsPerCommit: number,
  ) {}

  /** Events waiting for a commit (a measure of ingestion lag). */
  get pendingEvents(): number {
    return this.queuedEvents;
  }

  /** How long the oldest submission not yet committed has waited, ms (0 when none waits). */
  oldestWaitMs(now = performance.now()): number {
    const oldest = Math.min(this.committingSince ?? Infinity, this.queue[0]?.at ?? Infinity);
    return oldest === Infinity ? 0 : now - oldest;
  }

  /** Resolves once the events, the mark and the task rows are durably stored (in one group commit). */
  submit(events: ReadonlyArray<PipelineEvent>, mark?: SequenceMark, tasks?: TaskWrites): Promise<void> {
    if (this.closed) return Promise.reject(new Error('event writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ events, mark, tasks, resolve, reject, at: performance.now() });
      this.queuedEvents += events.length;
      if (!this.committing) this.committing = this.run();
    });
  }

  /** Waits until everything submitted so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.committing) await this.committing;
  }

  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }

  private async run(): Promise<void> {
    // Let every submission of this turn of the event loop join the first commit.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const group = this.takeGroup();
      this.committingSince = group[0]?.at ?? null;
      await this.commit(group);
      this.committingSince = null;
    }
    this.committing = null;
  }

  private takeGroup(): Submission[] {
    let count = 0;
    let n = 0;
    while (n < this.queue.length) {
      const size = this.queue[n]!.events.length;
      if (n > 0 && count + size > this.maxEventsPerCommit) break;
      count += size;
      n++;
    }
    const group = this.queue.slice(0, n);
    this.queue = this.queue.slice(n);
    this.queuedEvents -= count;
    return group;
  }

  private async commit(group: Submission[]): Promise<void> {
    const events: PipelineEvent[] = [];
    const marks = new Map<string, SequenceMark>();
    let create: TaskRecord[] | undefined;
    let update: TaskUpdate[] | undefined;
    let artifacts: string[] | undefined;
    let exports: string[] | undefined;
    const batches: MarkedBatch[] = [];
    for (const s of group) {
      if (s.mark) batches.push({ mark: s.mark, start: events.length, count: s.events.length });
      for (const e of s.events) events.push(e);
      if (s.mark) marks.set(s.mark.sid, s.mark);
      if (s.tasks?.create) (create ??= []).push(...s.tasks.create);
      if (s.tasks?.update) (update ??= []).push(...s.tasks.update);
      if (s.tasks?.announce?.artifacts) (artifacts ??= []).push(...s.tasks.announce.artifacts);
      if (s.tasks?.announce?.exports) (exports ??= []).push(...s.tasks.announce.exports);
    }
    const stop = this.metrics.storeCommitSeconds.startTimer();
    try {
      const announce = artifacts || exports ? { ...(artifacts ? { artifacts } : {}), ...(exports ? { exports } : {}) } : undefined;
      const writes = create || update || announce ? { ...(create ? { create } : {}), ...(update ? { update } : {}), ...(announce ? { announce } : {}) } : undefined;
      await this.store.appendEvents(events, [...marks.values()], writes, batches);
    } catch (err) {
      stop();
      this.metrics.storeErrors.inc();
      this.logger.error({ err, events: events.length }, 'store commit failed; nothing in it is acknowledged');
      for (const s of group) s.reject(err as Error);
      this.rejectQueuedBatches(err as Error);
      return;
    }
    stop();
    for (const s of group) s.resolve();
    const published: BusEvent[] = [];
    const perStream = new Map<StreamName, number>();
    for (const e of events) {
      if (e.stream === null) continue;
      perStream.set(e.stream, (perStream.get(e.stream) ?? 0) + 1);
      published.push({ stream: e.stream, oid: e.oid, sid: e.sid, event_type: e.event_type, json: e.json });
    }
    for (const [stream, n] of perStream) this.metrics.eventsStored.inc({ stream }, n);
    this.bus.publish(published);
  }

  /**
   * A failed commit also fails the sensor batches still waiting: one of them may be the next batch of a
   * sensor whose batch just failed, and storing it would move the sensor's mark past the one that was
   * not stored (which its resend would then be taken for a duplicate of). Their sensors resend them all.
   */
  private rejectQueuedBatches(err: Error): void {
    const kept: Submission[] = [];
    for (const s of this.queue) {
      if (s.mark) {
        this.queuedEvents -= s.events.length;
        s.reject(err);
      } else {
        kept.push(s);
      }
    }
    this.queue = kept;
  }
}
