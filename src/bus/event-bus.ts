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
  /** Hands stored events to every subscriber; never blocks the caller on a slow consumer. */
  publish(events: ReadonlyArray<BusEvent>): void;
  /** Returns an unsubscribe function. */
  subscribe(handler: BusHandler): () => void;
  close(): Promise<void>;
}
