// Flow-control protocol messages the cloud sends to sensors and adapters (decisions.md §2, §5): BACKOFF
// is also recorded on the sensor's timeline; ACK_MESSAGES is only counted in metrics, never stored.
import { Type, type Static } from 'typebox';
import { ackMessages, backoff } from './builders.js';
import { defineEvent } from './definition.js';
import { Count, EpochSeconds, Payload, Text } from './primitives.js';

export const BackoffPayload = Payload(
  {
    seconds: Count('How long the sensor or adapter must wait before sending again, in seconds.'),
    ts: EpochSeconds('When the backoff was sent, Unix seconds.'),
    reason: Type.Optional(Text('Why the cloud asked for a pause, e.g. "over quota" or "storage busy".')),
  },
  'Payload of BACKOFF.',
);
export type BackoffPayload = Static<typeof BackoffPayload>;

export const AckMessagesPayload = Payload(
  { seq: Count('Cumulative acknowledgement: every message up to this sequence number is stored.') },
  'Payload of ACK_MESSAGES.',
);
export type AckMessagesPayload = Static<typeof AckMessagesPayload>;

export const FLOW_CONTROL_EVENTS = [
  defineEvent({
    eventType: 'BACKOFF',
    stream: 'event',
    producer: 'cloud',
    trigger: 'The cloud tells a sensor or adapter to pause for N seconds (USP `bo`); each one sent is recorded on that sensor\'s timeline.',
    description: 'Flow control: the number of seconds the sensor should wait before sending events to the cloud.',
    routingScope: 'sensor',
    payloadSchema: BackoffPayload,
    example: backoff(30, 1717029877, 'storage busy'),
    seed: { page: 'platform-events', heading: 'BACKOFF', hasSample: false },
  }),
  defineEvent({
    eventType: 'ACK_MESSAGES',
    stream: null,
    producer: 'cloud',
    trigger: 'The cloud acknowledges the messages it stored (USP `ack`, sensor protocol `ack`); counted in metrics, not stored.',
    description: 'Cumulative acknowledgement of received messages, used by USP adapters. Not an event on any stream.',
    routingScope: 'sensor',
    payloadSchema: AckMessagesPayload,
    example: ackMessages(1842),
    seed: { page: 'platform-events', heading: 'ACK_MESSAGES', hasSample: false },
  }),
];
