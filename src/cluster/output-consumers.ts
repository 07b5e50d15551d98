// The cluster's output queues: each output consumes the cluster's JetStream stream through its own durable
// consumer (filtered on its organization and platform stream), so every event reaches every output once
// across the cluster, from whichever node holds the output's lease.
//
// - The consumer acknowledges cumulatively (AckPolicy.All): committing a position acknowledges every
//   message up to it. The position is also written to the store cursor, the record that outlives the
//   consumer (a consumer lost, or messages aged out of the stream's retention, are refilled from the log).
// - A node that dies holding unacknowledged messages leaves them pending; the next owner rewinds the
//   consumer to its acknowledgement floor when it opens the queue, so delivery resumes in order at once
//   (at least once: what the dead node sent but had not committed is sent again).
// - Redeliveries (a destination down longer than the ack wait) are recognised by their log position and
//   dropped: the worker still holds those messages.
import { createHash } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type ConsumerConfig, type ConsumerInfo, type ConsumerMessages, type JetStreamManager, type JsMsg, type NatsConnection } from 'nats';
import { decodeEvent, isNotFound } from '../bus/jetstream-bus.js';
import type { OutputConfig } from '../domain/outputs.js';
import type { Logger } from '../observability/logger.js';
import type { OutputQueue, OutputQueues } from '../sinks/outputs/output-queue.js';
import type { LogRow, Store } from '../store/store.js';
import type { ClusterNames } from './cluster-names.js';

const NS_PER_MS = 1_000_000;

export interface OutputConsumerSettings {
  /** Messages a consumer hands out before it waits for acknowledgements (the in-memory bound per output). */
  maxAckPending: number;
  /** After this long unacknowledged, a message is delivered again (dropped as a redelivery here), ms. */
  ackWaitMs: number;
  /** How often the stream's first retained message is looked up (aged-out detection), ms. */
  streamCheckMs: number;
}

export const DEFAULT_OUTPUT_CONSUMER_SETTINGS: OutputConsumerSettings = { maxAckPending: 10_000, ackWaitMs: 10 * 60_000, streamCheckMs: 10_000 };

/** The durable consumer's name: NATS names allow no dots or wildcards, output names may hold anything. */
export function outputConsumerName(oid: string, name: string): string {
  return `out_${createHash('sha256').update(`${oid}/${name}`).digest('hex').slice(0, 32)}`;
}

export class JetStreamOutputQueues implements OutputQueues {
  constructor(
    private readonly deps: { nc: NatsConnection; names: ClusterNames; store: Store; logger: Logger; settings?: OutputConsumerSettings },
  ) {}

  private get settings(): OutputConsumerSettings {
    return this.deps.settings ?? DEFAULT_OUTPUT_CONSUMER_SETTINGS;
  }

  /** A new output's consumer starts at the stream's end: it delivers what is stored from now on. */
  async prepare(config: OutputConfig): Promise<void> {
    const jsm = await this.deps.nc.jetstreamManager();
    const name = outputConsumerName(config.oid, config.name);
    if ((await consumerInfo(jsm, this.deps.names.stream, name)) !== null) return;
    await addAtStreamEnd(jsm, this.deps.names.stream, consumerConfig(name, this.deps.names.events(config.stream, config.oid), this.settings));
  }

  async discard(config: Pick<OutputConfig, 'oid' | 'name'>): Promise<void> {
    const jsm = await this.deps.nc.jetstreamManager();
    try {
      await jsm.consumers.delete(this.deps.names.stream, outputConsumerName(config.oid, config.name));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  open(config: OutputConfig): OutputQueue {
    return new JetStreamOutputQueue(this.deps.nc, this.deps.names, this.deps.store, config, this.settings, this.deps.logger);
  }
}

function consumerConfig(name: string, subject: string, settings: OutputConsumerSettings): Partial<ConsumerConfig> {
  return {
    durable_name: name,
    filter_subject: subject,
    ack_policy: AckPolicy.All,
    ack_wait: settings.ackWaitMs * NS_PER_MS,
    max_ack_pending: settings.maxAckPending,
    max_deliver: -1,
  };
}

/**
 * Always an explicit start sequence (never DeliverPolicy.New): the consumer's configuration then says where
 * it began, which is its acknowledgement floor until it acknowledges something (JetStream reports 0).
 */
async function addAt(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig>, startSeq: number): Promise<void> {
  await jsm.consumers.add(stream, { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, startSeq) });
}

async function addAtStreamEnd(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig>): Promise<void> {
  await addAt(jsm, stream, config, (await jsm.streams.info(stream)).state.last_seq + 1);
}

/** Stream position through which the consumer has acknowledged everything (or before which it started). */
function ackFloor(info: ConsumerInfo): number {
  if (info.ack_floor.consumer_seq > 0) return info.ack_floor.stream_seq;
  return Math.max(0, (info.config.opt_start_seq ?? 1) - 1);
}

async function consumerInfo(jsm: JetStreamManager, stream: string, name: string): Promise<ConsumerInfo | null> {
  try {
    return await jsm.consumers.info(stream, name);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

interface Held {
  row: LogRow;
  msg: JsMsg;
}

export class JetStreamOutputQueue implements OutputQueue {
  private readonly consumerName: string;
  private readonly subject: string;
  private jsm: JetStreamManager | null = null;
  private messages: ConsumerMessages | null = null;
  private pump: Promise<void> | null = null;
  /** Messages received and not yet acknowledged, in log order. */
  private held: Held[] = [];
  /** Highest log position received: anything at or below it arriving again is a redelivery. */
  private highest = 0;
  /** Serve what the log holds below the consumer's first message first (a consumer lost, or messages aged out). */
  private refill = false;
  private pendingOnServer = 0;
  private streamCheckedAt = -Infinity;
  private streamFirstSeq = 0;
  private arrival: (() => void) | null = null;
  private closed = false;
  /** Why the consumer stopped delivering while open: the next read fails with it, and the worker reopens. */
  private broken: Error | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly store: Store,
    private readonly config: OutputConfig,
    private readonly settings: OutputConsumerSettings,
    private readonly logger: Logger,
  ) {
    this.consumerName = outputConsumerName(config.oid, config.name);
    this.subject = names.events(config.stream, config.oid);
  }

  onArrival(wake: () => void): void {
    this.arrival = wake;
  }

  async open(): Promise<number> {
    // Also a reopen after a failure (the worker closes and opens the same queue): start clean.
    this.closed = false;
    this.broken = null;
    this.held = [];
    this.highest = 0;
    this.refill = false;
    const jsm = (this.jsm = await this.nc.jetstreamManager());
    const stream = this.names.stream;
    const cursor = await this.store.getOutputCursor(this.config.oid, this.config.name);
    const info = await consumerInfo(jsm, stream, this.consumerName);
    const log = { oid: this.config.oid, output: this.config.name, consumer: this.consumerName };
    if (info === null) {
      // Never prepared (an output from before the cluster) or lost: start at the stream's end and refill
      // from the log what lies between the stored cursor and the first message.
      await addAtStreamEnd(jsm, stream, consumerConfig(this.consumerName, this.subject, this.settings));
      this.refill = cursor !== null;
      this.logger.info({ ...log, cursor }, 'output consumer created');
    } else {
      const floor = ackFloor(info);
      const moved = info.config.filter_subject !== this.subject;
      const unacknowledged = info.delivered.consumer_seq > info.ack_floor.consumer_seq || info.num_ack_pending > 0;
      if (moved || unacknowledged) {
        // Rewind to what was committed (an owner died holding messages, or the output changed stream). A
        // crash between the two calls leaves no consumer: the next open refills from the store cursor.
        await jsm.consumers.delete(stream, this.consumerName);
        await addAt(jsm, stream, consumerConfig(this.consumerName, this.subject, this.settings), floor + 1);
        this.logger.info({ ...log, from_stream_seq: floor + 1, changed_stream: moved }, 'output consumer rewound to its acknowledgement floor');
      }
      const first = await this.firstStreamSeq(true);
      if (cursor !== null && floor + 1 < first) {
        this.refill = true;
        this.logger.warn({ ...log, floor, first_retained: first }, 'the stream no longer holds messages this output had not delivered; refilling them from the event log');
      }
    }
    const consumer = await this.nc.jetstream().consumers.get(stream, this.consumerName);
    const messages = (this.messages = await consumer.consume({ max_messages: Math.min(1000, this.settings.maxAckPending) }));
    this.pump = (async () => {
      for await (const msg of messages) this.receive(msg);
    })().then(
      () => {
        if (!this.closed) this.broken = new Error(`the consumer ${this.consumerName} stopped delivering`);
      },
      (err: unknown) => {
        if (!this.closed) this.broken = err instanceof Error ? err : new Error(String(err));
      },
    );
    return cursor ?? 0;
  }

  private receive(msg: JsMsg): void {
    const decoded = decodeEvent(msg.subject, msg.headers, msg.data);
    if (decoded === null || decoded.seq === null) {
      // Not a stored event (nothing else is published on an output's subject): acknowledged with the next commit.
      return;
    }
    if (decoded.seq <= this.highest) return;
    this.highest = decoded.seq;
    const e = decoded.event;
    this.held.push({ row: { seq: decoded.seq, oid: e.oid, sid: e.sid, event_type: e.event_type, json: e.json }, msg });
    this.arrival?.();
  }

  /** Index of the first held message after `after`. */
  private firstAfter(after: number): number {
    let lo = 0;
    let hi = this.held.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.held[mid]!.row.seq <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async read(after: number, limit: number): Promise<LogRow[]> {
    if (this.broken) throw this.broken;
    const i = this.firstAfter(after);
    if (this.refill) {
      const bound = i < this.held.length ? this.held[i]!.row.seq : Infinity;
      const rows = (await this.store.readLog({ oid: this.config.oid, stream: this.config.stream, afterSeq: after, limit })).filter((r) => r.seq < bound);
      if (rows.length > 0) return rows;
      this.refill = false;
      this.logger.info({ oid: this.config.oid, output: this.config.name, position: after }, 'output refilled from the event log; back on its consumer');
    }
    return this.held.slice(i, i + limit).map((h) => h.row);
  }

  async end(): Promise<number> {
    // Only what this output's consumer has seen: a later position of the log may still be on its way to it.
    return this.held.length > 0 ? this.held[this.held.length - 1]!.row.seq : this.highest;
  }

  async commit(seq: number): Promise<void> {
    await this.store.setOutputCursor(this.config.oid, this.config.name, seq);
    const i = this.firstAfter(seq);
    if (i === 0) return;
    // Acknowledging the last one acknowledges all before it (AckPolicy.All).
    const last = this.held[i - 1]!.msg;
    if (!(await last.ackAck())) throw new Error(`JetStream did not confirm the acknowledgement of output ${this.config.name}`);
    this.held = this.held.slice(i);
  }

  async backlog(after: number, limit: number, exact = true): Promise<number> {
    const jsm = this.jsm;
    if (jsm === null) return 0;
    const info = await consumerInfo(jsm, this.names.stream, this.consumerName);
    // Deleted behind this queue's back (by hand, or a stream recreated): reopening recreates it and refills from the log.
    if (info === null) throw new Error(`the output's consumer ${this.consumerName} is gone`);
    this.pendingOnServer = info.num_pending;
    const waiting = this.held.length - this.firstAfter(after);
    if (waiting === 0 && !this.refill) {
      // Messages aged out of the stream before this consumer got them: the log still has them.
      const first = await this.firstStreamSeq(false);
      if (info.delivered.stream_seq + 1 < first && (await this.store.readLog({ oid: this.config.oid, stream: this.config.stream, afterSeq: after, limit: 1 })).length > 0) {
        this.refill = true;
        this.logger.warn({ oid: this.config.oid, output: this.config.name, delivered: info.delivered.stream_seq, first_retained: first }, 'messages aged out of the stream before this output got them; refilling from the event log');
      }
    }
    if (this.refill) {
      const last = await this.store.lastLogSeq();
      const bound = Math.max(0, last - after);
      return bound <= limit || !exact ? bound : this.store.countLog({ oid: this.config.oid, stream: this.config.stream, afterSeq: after, upToSeq: last });
    }
    return this.pendingOnServer + waiting;
  }

  pendingEstimate(after: number): number {
    return this.pendingOnServer + this.held.length - this.firstAfter(after);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.messages?.close().catch(() => undefined);
    await this.pump;
    // Unacknowledged messages stay pending on the consumer; the next owner rewinds to the floor.
    this.held = [];
  }

  private async firstStreamSeq(force: boolean): Promise<number> {
    const now = performance.now();
    if (force || now - this.streamCheckedAt >= this.settings.streamCheckMs) {
      this.streamCheckedAt = now;
      this.streamFirstSeq = (await this.jsm!.streams.info(this.names.stream)).state.first_seq;
    }
    return this.streamFirstSeq;
  }
}
