// What distinguishes one sensor-facing protocol from another: how frames become messages and messages
// become frames. The session (sensor-session.ts) runs admission, sequencing, storage and acks the same
// way for every wire; protocol v1 (/sensor) and USP v2 (/usp) differ only here.
import type { ServerConfig } from '../../config.js';
import type { HelloMessage, SensorEvent, ServerMessage } from '../../protocol/messages.js';
import type { SensorCredentials } from '../../services/sensor-admission.js';

/** The opening of a session, whatever the wire: who the sensor is and which event stream it continues. */
export type SessionHello = Omit<HelloMessage, 'auth'> & { auth: SensorCredentials };

/** A sensor event as a wire delivers it; `hostname` is set when the event is about another host (USP mapping). */
export type InboundEvent = SensorEvent & { hostname?: string };

export interface InboundBatch {
  t: 'events';
  seq: number;
  events: InboundEvent[];
}

export type InboundMessage = { t: 'hello'; hello: SessionHello } | InboundBatch;

export type WireDecode = { ok: true; message: InboundMessage } | { ok: false; code: number; error: string; metric: string };

export interface SessionWire {
  /** Label for logs and metrics. */
  readonly protocol: 'sensor' | 'usp';
  /** Decodes one frame; `opened` tells whether the hello was already accepted. */
  decode(data: Buffer, isBinary: boolean, opened: boolean): WireDecode;
  /** The frames that carry a server message on this wire; none when the wire has no such message. */
  encode(message: ServerMessage): Array<string | Buffer>;
  /** Frames sent before the server closes a session it wants to see reconnect (node shutdown, operator request). */
  reconnectFrames(): Array<string | Buffer>;
  /** Batches a session may have received but not yet stored before the server stops reading it. */
  maxInflight(config: ServerConfig): number;
}
