// A sensor's life as seen on its event stream: it starts, connects, heartbeats, loses data, stops,
// disconnects. STARTING_UP / SHUTTING_DOWN / SYNC / DATA_DROPPED come from the sensor; CONNECTED and
// DISCONNECTED are written by the cloud about the session (decisions.md §2).
import { Type, type Static } from 'typebox';
import { connected, dataDropped, disconnected, shuttingDown, startingUp, sync } from './builders.js';
import { defineEvent } from './definition.js';
import { BooleanInteger, Count, EpochSeconds, Nested, Payload, PATTERNS, Text } from './primitives.js';

const EXAMPLE_TS = 1717029877;

/** `{"STARTING_UP": {"ts": S}, "ts": S}`: the seed's nested form, plus a flat `ts` like every other payload. */
export const StartingUpPayload = Payload(
  {
    STARTING_UP: Nested({ ts: EpochSeconds('When the sensor process started, Unix seconds.') }, 'Start details, nested under the event name as in the seed sample.'),
    // Optional: the seed sample has only the nested form.
    ts: Type.Optional(EpochSeconds('Same as STARTING_UP.ts; Picket sensors always set it (the seed sample does not carry it).')),
  },
  'Payload of STARTING_UP.',
);
export type StartingUpPayload = Static<typeof StartingUpPayload>;

export const ShuttingDownPayload = Payload(
  {
    SHUTTING_DOWN: Nested({ ts: EpochSeconds('When the graceful stop began, Unix seconds.') }, 'Stop details, nested under the event name as in the seed sample.'),
    ts: Type.Optional(EpochSeconds('Same as SHUTTING_DOWN.ts; Picket sensors always set it (the seed sample does not carry it).')),
  },
  'Payload of SHUTTING_DOWN.',
);
export type ShuttingDownPayload = Static<typeof ShuttingDownPayload>;

export const SyncPayload = Payload({ ts: EpochSeconds('When the heartbeat was sent, Unix seconds.') }, 'Payload of SYNC.');
export type SyncPayload = Static<typeof SyncPayload>;

export const ConnectedPayload = Payload(
  {
    HOST_NAME: Text('Hostname the sensor reported in its hello.'),
    IS_SEGREGATED: BooleanInteger('1 if the host is under network isolation right now, else 0.'),
    KERNEL_ACQ_AVAILABLE: BooleanInteger('1 if the sensor has a kernel component collecting events, else 0.'),
    MAC_ADDRESS: Text('MAC address of the host\'s primary interface, written 42-01-0A-80-00-02 ("" if the host reported none).', { pattern: PATTERNS.mac.pattern }),
  },
  'Payload of CONNECTED.',
);
export type ConnectedPayload = Static<typeof ConnectedPayload>;

export const DisconnectedPayload = Payload(
  {
    DISCONNECTED: Nested({}, 'Always an empty object, as in the seed sample.'),
    ts: EpochSeconds('When the session ended, Unix seconds.'),
    reason: Type.Optional(Text('Why the session ended, e.g. `closed` (the sensor closed normally), `timeout`, `connection lost`, `shutdown` (the server stopped), `replaced`, `deleted`, or `error: ...`. Always set by Picket; the seed sample has none.')),
  },
  'Payload of DISCONNECTED.',
);
export type DisconnectedPayload = Static<typeof DisconnectedPayload>;

export const DataDroppedPayload = Payload(
  {
    dropped_events: Count('How many events the sensor dropped because its offline buffer was full.'),
    dropped_bytes: Count('How many bytes of events it dropped.'),
    since: EpochSeconds('When the first of these drops happened, Unix seconds.'),
    ts: EpochSeconds('When the sensor reported the loss (on reconnect), Unix seconds.'),
  },
  'Payload of DATA_DROPPED.',
);
export type DataDroppedPayload = Static<typeof DataDroppedPayload>;

export const LIFECYCLE_EVENTS = [
  defineEvent({
    eventType: 'STARTING_UP',
    stream: 'event',
    producer: 'sensor',
    trigger: 'The sensor process starts; it is the first event it sends.',
    description: 'Event generated when the sensor starts.',
    routingScope: 'sensor',
    payloadSchema: StartingUpPayload,
    example: startingUp(EXAMPLE_TS),
    seed: { page: 'sensor-events', heading: 'STARTING_UP', hasSample: true },
  }),
  defineEvent({
    eventType: 'SHUTTING_DOWN',
    stream: 'event',
    producer: 'sensor',
    trigger: 'The sensor stops gracefully (SIGTERM/SIGINT or service stop), before it closes its connection.',
    description: 'Event generated when the sensor shuts down. It may be missing if the host stops abruptly.',
    routingScope: 'sensor',
    payloadSchema: ShuttingDownPayload,
    example: shuttingDown(EXAMPLE_TS),
    seed: { page: 'sensor-events', heading: 'SHUTTING_DOWN', hasSample: true },
  }),
  defineEvent({
    eventType: 'SYNC',
    stream: 'event',
    producer: 'sensor',
    trigger: 'Every sync interval (10 minutes by default, set by the cloud in its welcome) while connected.',
    description: 'Heartbeat from the sensor; the cloud refreshes the sensor\'s `alive` time from it.',
    routingScope: 'sensor',
    payloadSchema: SyncPayload,
    example: sync(EXAMPLE_TS),
    seed: { page: 'platform-events', heading: 'SYNC', hasSample: false },
  }),
  defineEvent({
    eventType: 'CONNECTED',
    stream: 'event',
    producer: 'cloud',
    trigger: 'The cloud admits a sensor\'s hello and a session is established.',
    description: 'Generated when a sensor connects to the cloud, from what the sensor reported in its hello.',
    routingScope: 'sensor',
    payloadSchema: ConnectedPayload,
    example: connected({ hostname: 'linux-server-1', isSegregated: false, kernel: true, mac: '42:01:0a:80:00:02' }),
    seed: { page: 'sensor-events', heading: 'CONNECTED', hasSample: true },
  }),
  defineEvent({
    eventType: 'DISCONNECTED',
    stream: 'event',
    producer: 'cloud',
    trigger: 'A sensor\'s session ends for any reason (close, liveness timeout, lost connection, server shutdown, kill).',
    description: 'Generated by the cloud when a sensor disconnects, with the reason.',
    routingScope: 'sensor',
    payloadSchema: DisconnectedPayload,
    example: disconnected(EXAMPLE_TS, 'closed'),
    seed: { page: 'sensor-events', heading: 'DISCONNECTED', hasSample: true },
  }),
  defineEvent({
    eventType: 'DATA_DROPPED',
    stream: 'event',
    producer: 'sensor',
    trigger: 'The sensor reconnects after its offline buffer overflowed and events were dropped.',
    description: 'Reports how many events and bytes the sensor lost while offline, and since when, so that no loss is silent.',
    routingScope: 'sensor',
    payloadSchema: DataDroppedPayload,
    example: dataDropped({ droppedEvents: 1520, droppedBytes: 786432, sinceMs: 1717029000123, tsSec: EXAMPLE_TS }),
    seed: { page: 'platform-events', heading: 'DATA_DROPPED', hasSample: false },
  }),
];
