// Picket sensor protocol v1 messages (docs/protocol.md). The schemas are the spec: the gateway validates
// every sensor message against them, and the reference sensor is typed by them.
import { Type, type Static } from 'typebox';

export const PROTOCOL_VERSIONS = [1] as const;
export const GATEWAY_PATH = '/sensor';

const Uuid = Type.String({ format: 'uuid' });
const EventType = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' });

export const HostInfo = Type.Object(
  {
    hostname: Type.String({ minLength: 1, maxLength: 255 }),
    plat: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    arch: Type.Integer({ minimum: 0, maximum: 255 }),
    int_ip: Type.String({ maxLength: 64 }),
    mac: Type.String({ maxLength: 64 }),
    fingerprint: Type.String({ maxLength: 128 }),
    version: Type.String({ maxLength: 64 }),
    kernel: Type.Boolean(),
    is_segregated: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type HostInfo = Static<typeof HostInfo>;

export const EnrollAuth = Type.Object(
  { installation_key: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
export const IdentityAuth = Type.Object(
  { sid: Uuid, secret: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);

/**
 * A crash the sensor recorded before this process started (decisions.md §3): sent in every hello until a
 * welcome arrives; the cloud emits `sensor_crash` once per `crash_id`.
 */
export const CrashReport = Type.Object(
  {
    /** Unique per crash, so that a report resent after a lost welcome is recognised. */
    crash_id: Uuid,
    /** Numeric id of the source file where it crashed (reference sensor: FNV-1a of its package-relative path; 0 for a fatal signal). */
    file_id: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    /** Line in that file (for a fatal signal: the signal number). */
    line_number: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    /** Operating-system id of the thread that crashed. */
    thread_id: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    /** Unix ms of the crash. */
    crashed_at: Type.Integer({ minimum: 0 }),
    /** What happened, for logs (not part of the event). */
    message: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type CrashReport = Static<typeof CrashReport>;

export const HelloMessage = Type.Object(
  {
    t: Type.Literal('hello'),
    /** Protocol versions the sensor speaks; the server picks the highest it also speaks. */
    versions: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 16 }),
    auth: Type.Union([EnrollAuth, IdentityAuth]),
    host: HostInfo,
    /** The sensor's event stream: a UUID per buffer instance, so sequence numbers restart safely. */
    stream_id: Uuid,
    /** Present when the sensor's previous process crashed and the crash is not yet reported. */
    crash: Type.Optional(CrashReport),
  },
  { additionalProperties: false },
);
export type HelloMessage = Static<typeof HelloMessage>;

export const SensorEvent = Type.Object(
  {
    event_type: EventType,
    /** Unix milliseconds at the endpoint. */
    event_time: Type.Integer({ minimum: 0 }),
    event: Type.Record(Type.String(), Type.Unknown()),
    investigation_id: Type.Optional(Type.String({ maxLength: 256 })),
    /** The task this event answers (CLOUD_NOTIFICATION, RECEIPT or the command's result event). */
    task_id: Type.Optional(Uuid),
    this: Type.Optional(Type.String({ maxLength: 64 })),
    parent: Type.Optional(Type.String({ maxLength: 64 })),
    target: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type SensorEvent = Static<typeof SensorEvent>;

export const EventsMessage = Type.Object(
  {
    t: Type.Literal('events'),
    /** Batch sequence number: strictly increasing per stream_id, starting at 1. */
    seq: Type.Integer({ minimum: 1 }),
    events: Type.Array(SensorEvent, { minItems: 1 }),
  },
  { additionalProperties: false },
);
export type EventsMessage = Static<typeof EventsMessage>;

/** Every message type a sensor may send, by `t`. */
export const SENSOR_MESSAGE_SCHEMAS = {
  hello: HelloMessage,
  events: EventsMessage,
} as const;
export type SensorMessageType = keyof typeof SENSOR_MESSAGE_SCHEMAS;
export type SensorMessage = HelloMessage | EventsMessage;

// ---- server → sensor ----

export interface WelcomeMessage {
  t: 'welcome';
  version: number;
  oid: string;
  iid: string;
  sid: string;
  /** Present only when this hello enrolled the sensor: keep it, it is shown once. */
  identity?: { oid: string; iid: string; sid: string; secret: string };
  /** Highest batch seq of this stream_id already stored (0 if none): drop those batches, resend the rest. */
  ack_seq: number;
  /** Seconds between SYNC events the sensor should send. */
  sync_interval_s: number;
  /** The server pings this often (seconds) and closes sessions silent for liveness_timeout_s. */
  ping_interval_s: number;
  liveness_timeout_s: number;
  /** Largest frame the server accepts, bytes. */
  max_frame_bytes: number;
  /** Most events per batch. */
  max_batch_events: number;
  /** Server clock, Unix ms. */
  server_time: number;
}

/** Cumulative acknowledgement (ACK_MESSAGES): every batch with seq <= this is durably stored. */
export interface AckMessage {
  t: 'ack';
  seq: number;
}

/** Flow control (BACKOFF): send no events for `seconds`; keep buffering. */
export interface BackoffMessage {
  t: 'backoff';
  seconds: number;
}

/** A task for the sensor (issued through the tasking API). */
export interface TaskMessage {
  t: 'task';
  task_id: string;
  /** The sensor the task is addressed to: a sensor receiving another sid's task refuses it (ERROR 87). */
  sid: string;
  /** The command line, parsed shell-like by the sensor (protocol/command-line.ts). */
  command: string;
  investigation_id?: string;
  /** Epoch seconds after which the task must not run. */
  expiry: number;
}

/** Drop the local identity and enroll again with the installation key. */
export interface ReenrollMessage {
  t: 'reenroll';
}

/** Sent just before the server closes the session for an error: a readable explanation. */
export interface ErrorMessage {
  t: 'error';
  code: number;
  message: string;
  /** Refusals that may succeed later (4010 over quota, 4013 clone conflict, 1013): wait at least this long. */
  retry_after_s?: number;
  /** 4011 deleted: how long the sensor stays refused, as a Go duration ("720h0m0s"). */
  denied_for?: string;
  /** Present when this hello enrolled the sensor but the session is refused (over quota): keep it like welcome.identity. */
  identity?: { oid: string; iid: string; sid: string; secret: string };
}

export type ServerMessage = WelcomeMessage | AckMessage | BackoffMessage | TaskMessage | ReenrollMessage | ErrorMessage;
