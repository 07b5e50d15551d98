// The event bus carries events that are already durably stored to whatever consumes them next
// (outputs, live streams, rules). The embedded default is in-process; cluster mode puts NATS JetStream here.

export type StreamName = 'event' | 'deployment' | 'artifact' | 'billing' | 'audit' | 'schedule';

export interface BusEvent {
  stream: StreamName;
  oid: string;
  sid: string | null;
  event_type: string;
  /** The stored envelope as JSON text. */
  json: string;
}

export type BusHandler = (events: ReadonlyArray<BusEvent>) => void;

export interface EventBus {
  /**
   * Announces events that are durably stored (in the event log) to every subscriber; never blocks the
   * caller on a slow consumer. In a cluster the log itself is relayed to the bus (src/cluster/event-relay.ts),
   * so this only says "something was stored".
   */
  publish(events: ReadonlyArray<BusEvent>): void;
  /** Hands events that are never stored (schedule ticks) to every subscriber, of every node. */
  publishTransient(events: ReadonlyArray<BusEvent>): void;
  /** Returns an unsubscribe function. */
  subscribe(handler: BusHandler): () => void;
  close(): Promise<void>;
}
