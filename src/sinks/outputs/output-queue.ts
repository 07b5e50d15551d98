// Where an output's worker reads what it must deliver, and records what it delivered: its durable queue.
// On one node it is the event log itself with a cursor per output (StoreOutputQueue). In a cluster it is
// the output's durable JetStream consumer (src/cluster/output-consumers.ts), run on the node holding the
// output's lease. The records are the stored events with their log positions, in log order, and a
// position once committed is where delivery resumes after a restart or on another node.
import type { OutputConfig } from '../../domain/outputs.js';
import type { LogRow, Store } from '../../store/store.js';

export interface OutputQueue {
  /** The position delivery resumes after (everything up to it was delivered). */
  open(): Promise<number>;
  /** Up to `limit` records after position `after`, in log order; [] when none waits right now. */
  read(after: number, limit: number): Promise<LogRow[]>;
  /** The end of the log now: the highest committed position of any stream (no position below it is still to come). */
  end(): Promise<number>;
  /** Everything through position `seq` is delivered: record it durably. */
  commit(seq: number): Promise<void>;
  /**
   * Records waiting after position `after`. May be an upper bound when that is below `limit`, or when
   * `exact` is false (counting a long backlog exactly is not free); exact otherwise.
   */
  backlog(after: number, limit: number, exact?: boolean): Promise<number>;
  close(): Promise<void>;
  /** Called when records arrive that the worker may be sleeping on (queues fed by push). */
  onArrival?(wake: () => void): void;
  /** Records waiting after `after` as far as known without I/O (for the lag gauge); absent: log positions. */
  pendingEstimate?(after: number): number;
}

/** Makes the queue of an output; a cluster prepares consumers and discards them with the output. */
export interface OutputQueues {
  /** Called when the output is created or replaced through the API, on the node that took the call. */
  prepare(config: OutputConfig): Promise<void>;
  /** Called when the output is deleted. */
  discard(config: Pick<OutputConfig, 'oid' | 'name'>): Promise<void>;
  open(config: OutputConfig): OutputQueue;
}

/** The embedded default: the event log in the store, and a cursor per output in the store. */
export class StoreOutputQueue implements OutputQueue {
  constructor(
    private readonly store: Store,
    private readonly config: Pick<OutputConfig, 'oid' | 'name' | 'stream'>,
  ) {}

  async open(): Promise<number> {
    return (await this.store.getOutputCursor(this.config.oid, this.config.name)) ?? (await this.store.lastLogSeq());
  }

  read(after: number, limit: number): Promise<LogRow[]> {
    return this.store.readLog({ oid: this.config.oid, stream: this.config.stream, afterSeq: after, limit });
  }

  end(): Promise<number> {
    return this.store.lastLogSeq();
  }

  commit(seq: number): Promise<void> {
    return this.store.setOutputCursor(this.config.oid, this.config.name, seq);
  }

  async backlog(after: number, limit: number, exact = true): Promise<number> {
    const last = await this.store.lastLogSeq();
    // Positions cover every organization's events: a cheap bound, counted exactly only when over the limit.
    const bound = Math.max(0, last - after);
    if (bound <= limit || !exact) return bound;
    return this.store.countLog({ oid: this.config.oid, stream: this.config.stream, afterSeq: after, upToSeq: last });
  }

  async close(): Promise<void> {}
}

export class StoreOutputQueues implements OutputQueues {
  constructor(private readonly store: Store) {}

  async prepare(): Promise<void> {}

  async discard(): Promise<void> {}

  open(config: OutputConfig): OutputQueue {
    return new StoreOutputQueue(this.store, config);
  }
}
