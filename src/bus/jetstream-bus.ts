// The cluster's event bus on NATS JetStream. Every event of the log is published once to one durable
// stream, on the subject of its organization and platform stream (`<prefix>.ev.<stream>.<oid>`), by the
// leader's relay (src/cluster/event-relay.ts), which reads the log in position order; schedule ticks,
// which are never stored, are published directly by whoever produces them. Each node's subscribers
// (live streams, the output workers' wake-ups) get every event of the cluster through one ordered
// consumer of the node, from the moment it starts. Each output reads the stream through its own durable
// consumer (src/cluster/output-consumers.ts), which falls back on the event log for what the stream's
// retention dropped. publish() of stored events only wakes the relay.
import { DeliverPolicy, headers as natsHeaders, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type MsgHdrs, type NatsConnection } from 'nats';
import type { Logger } from '../observability/logger.js';
import type { BusEvent, BusHandler, EventBus, StreamName } from './event-bus.js';

/** Subjects and the stream of one installation on NATS (src/cluster/cluster-names.ts builds them). */
export interface JetStreamBusNames {
  readonly stream: string;
  /** Wildcard of every event subject. */
  readonly eventSubjects: string;
  events(stream: StreamName, oid: string): string;
  /** Core NATS subject that wakes the relay. */
  readonly relayWake: string;
}

export const HEADER = {
  /** Log position of a stored event (absent on events that are never stored). */
  seq: 'Picket-Seq',
  sid: 'Picket-Sid',
  type: 'Picket-Type',
} as const;

const STREAMS: ReadonlySet<string> = new Set<StreamName>(['event', 'deployment', 'artifact', 'billing', 'audit', 'schedule']);

const NS_PER_MS = 1_000_000;

export interface StreamSettings {
  /** How long the stream keeps events, ms (the store keeps them longer). */
  maxAgeMs: number;
  /** Window in which a message id published twice is stored once (the relay's handover), ms. */
  duplicateWindowMs: number;
}

/** Creates the stream, or brings an existing one to these settings. */
export async function ensureEventStream(jsm: JetStreamManager, names: JetStreamBusNames, settings: StreamSettings): Promise<void> {
  const config = {
    name: names.stream,
    subjects: [names.eventSubjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: settings.maxAgeMs * NS_PER_MS,
    duplicate_window: settings.duplicateWindowMs * NS_PER_MS,
  };
  try {
    await jsm.streams.info(names.stream);
    await jsm.streams.update(names.stream, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number }; message?: string };
  return e.code === '404' || e.api_error?.err_code === 10059 || e.api_error?.err_code === 10014 || /not found/i.test(e.message ?? '');
}

/** The headers of a published event. */
export function eventHeaders(e: Pick<BusEvent, 'sid' | 'event_type'>, seq: number | null): MsgHdrs {
  const h = natsHeaders();
  if (seq !== null) h.set(HEADER.seq, String(seq));
  if (e.sid !== null) h.set(HEADER.sid, e.sid);
  h.set(HEADER.type, e.event_type);
  return h;
}

/** A bus message back into a BusEvent (and its log position, when stored); null when it is not one of ours. */
export function decodeEvent(subject: string, hdrs: MsgHdrs | undefined, data: Uint8Array): { event: BusEvent; seq: number | null } | null {
  const tokens = subject.split('.');
  const oid = tokens.at(-1);
  const stream = tokens.at(-2);
  if (oid === undefined || stream === undefined || !STREAMS.has(stream)) return null;
  const type = hdrs?.get(HEADER.type) ?? '';
  const sid = hdrs?.get(HEADER.sid) || null;
  const seqText = hdrs?.get(HEADER.seq);
  return {
    event: { stream: stream as StreamName, oid, sid, event_type: type, json: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8') },
    seq: seqText ? Number(seqText) : null,
  };
}

export class JetStreamBus implements EventBus {
  private readonly handlers = new Set<BusHandler>();
  private readonly js: JetStreamClient;
  private pending: BusEvent[] = [];
  private flushScheduled = false;
  private consuming: Promise<void> | null = null;
  private stopConsuming: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: JetStreamBusNames,
    private readonly logger: Logger,
    /** Called (on this node) whenever something was stored here: the relay of a leading node listens. */
    private readonly onStoredHere: () => void = () => undefined,
  ) {
    this.js = nc.jetstream();
  }

  /** Starts this node's ordered consumer: from now on subscribers see every event of the cluster. */
  async start(): Promise<void> {
    const consumer = await this.js.consumers.get(this.names.stream, { filterSubjects: this.names.eventSubjects, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume({ max_messages: 2000 });
    this.stopConsuming = () => void messages.close().catch(() => undefined);
    this.consuming = (async () => {
      for await (const m of messages) {
        const decoded = decodeEvent(m.subject, m.headers, m.data);
        if (decoded) this.deliver(decoded.event);
      }
    })().catch((err: unknown) => {
      if (!this.closed) this.logger.error({ err }, 'the bus consumer of this node stopped');
    });
  }

  publish(events: ReadonlyArray<BusEvent>): void {
    if (this.closed || events.length === 0) return;
    this.onStoredHere();
    try {
      this.nc.publish(this.names.relayWake);
    } catch (err) {
      // The relay also polls: a lost wake-up only delays delivery.
      this.logger.debug({ err }, 'could not wake the relay');
    }
  }

  publishTransient(events: ReadonlyArray<BusEvent>): void {
    if (this.closed) return;
    for (const e of events) {
      this.js.publish(this.names.events(e.stream, e.oid), Buffer.from(e.json), { headers: eventHeaders(e, null) }).catch((err: unknown) => {
        this.logger.error({ err, event_type: e.event_type, oid: e.oid }, 'could not publish an event to the bus');
      });
    }
  }

  subscribe(handler: BusHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    this.stopConsuming?.();
    await this.consuming;
  }

  /** Events arriving together reach the handlers as one batch. */
  private deliver(event: BusEvent): void {
    this.pending.push(event);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = [];
      for (const handler of this.handlers) {
        try {
          handler(batch);
        } catch {
          // A failing consumer must not break the others; consumers count their own errors.
        }
      }
    });
  }
}
