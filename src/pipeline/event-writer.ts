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
  /** Submission time of the oldest submission of each commit under way, oldest commit first. */
  private readonly committingSince: number[] = [];
  private closed = false;
  /** Producers that stopped reading while the queue was full, resumed once it has room again. */
  private readonly waiting = new Set<() => void>();
  /** Queued events at which producers that can wait (sensor sessions) stop reading. */
  private readonly fullAt: number;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly maxEventsPerCommit: number,
  ) {
    // Two groups' worth: the next group is always ready when a commit ends, and what is beyond it waits
    // in the senders' sockets instead of this process's heap (where it would cost collection time).
    this.fullAt = 2 * maxEventsPerCommit;
  }

  /** Events waiting for a commit (a measure of ingestion lag). */
  get pendingEvents(): number {
    return this.queuedEvents;
  }

  /**
   * True while the queue holds two groups' worth of events or more: a producer that can wait should stop
   * reading and call whenRoom(). What it has already read is still submitted (nothing read is dropped).
   */
  get full(): boolean {
    return this.queuedEvents >= this.fullAt;
  }

  /**
   * Calls `resume` once the queue is down to one group's worth (on the next microtask if it already is:
   * never before the caller holds the returned function); returns a function that cancels the call (for
   * a producer that goes away first).
   */
  whenRoom(resume: () => void): () => void {
    if (this.queuedEvents < this.maxEventsPerCommit) {
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) resume();
      });
      return () => void (cancelled = true);
    }
    this.waiting.add(resume);
    return () => void this.waiting.delete(resume);
  }

  /** How long the oldest submission not yet committed has waited, ms (0 when none waits). */
  oldestWaitMs(now = performance.now()): number {
    const oldest = Math.min(this.committingSince[0] ?? Infinity, this.queue[0]?.at ?? Infinity);
    return oldest === Infinity ? 0 : now - oldest;
  }

  /** Resolves once the events, the mark and the task rows are durably stored (in one group commit). */
  submit(events: ReadonlyArray<PipelineEvent>, mark?: SequenceMark, tasks?: TaskWrites): Promise<void> {
    if (this.closed) return Promise.reject(new Error('event writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ events, mark, tasks, resolve, reject, at: performance.now() });
      this.queuedEvents += events.length;
      this.metrics.ingestQueueEvents.set(this.queuedEvents);
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
    const inFlight = new Set<Promise<void>>();
    while (this.queue.length > 0 || inFlight.size > 0) {
      // A store that commits in call order (and fails whatever follows a failed commit) takes the next
      // group while one commits: handing a group over costs time the store would otherwise sit idle.
      if (this.queue.length > 0 && inFlight.size < (this.store.appendPipelineDepth ?? 1)) {
        const group = this.takeGroup();
        const since = group[0]?.at ?? performance.now();
        this.committingSince.push(since);
        const done: Promise<void> = this.commit(group).finally(() => {
          inFlight.delete(done);
          this.committingSince.splice(this.committingSince.indexOf(since), 1);
        });
        inFlight.add(done);
        continue;
      }
      await Promise.race(inFlight);
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
    this.metrics.ingestQueueEvents.set(this.queuedEvents);
    this.resumeIfRoom();
    return group;
  }

  private resumeIfRoom(): void {
    if (this.waiting.size === 0 || this.queuedEvents >= this.maxEventsPerCommit) return;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const resume of waiting) resume();
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
    this.metrics.ingestQueueEvents.set(this.queuedEvents);
    this.resumeIfRoom();
  }
}
