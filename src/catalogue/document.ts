// The whole catalogue as one JSON document (`picket events schema`): streams, routing, and every event
// with its producer, trigger, fields, JSON Schema and an example envelope.
import type { StreamName } from '../bus/event-bus.js';
import { PICKET_VERSION } from '../version.js';
import { exampleEnvelope } from './examples.js';
import { typeLabel } from './fields.js';
import { CATALOGUE_VERSION, listEvents } from './registry.js';
import { PRODUCED_REQUIRED, PRODUCED_ROUTING, Routing, routingFieldDocs } from './routing.js';

/** What each stream carries (decisions.md §2). */
export const STREAMS: Record<StreamName, string> = {
  event: 'Sensor and adapter telemetry and each sensor\'s own lifecycle: CONNECTED, SYNC, RECEIPT, command results, DATA_DROPPED... Sensor event types not in the catalogue go here too.',
  deployment: 'What happens to sensors as members of the organization: enrollment, refusals (over quota, deleted), clones, crashes, quota changes, disabled cloud adapters.',
  artifact: 'Artifacts stored and exports ready for download.',
  billing: 'Usage metering records.',
  audit: 'Who did what: one event per mutating API call.',
  schedule: 'Periodic ticks per organization, sensor and cloud adapter, for rules to act on. Not retained and not output; seen on live streams of type schedule.',
};

export const ENVELOPE_DESCRIPTION =
  'Every event is {"routing": {...}, "event": {...}}: routing says who the event is about, what it is (event_type) and when it happened; event is the payload, whose schema depends on event_type. ' +
  'The exception is billing_record, whose envelope is {"record": {...}} with an optional routing beside it. ' +
  'routing.event_time is Unix milliseconds; every ts inside a payload is Unix seconds. Payloads may carry fields beyond the documented ones, never fewer, never renamed.';

function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function catalogueDocument(): object {
  return plain({
    name: 'picket-event-catalogue',
    version: CATALOGUE_VERSION,
    picket_version: PICKET_VERSION,
    envelope: ENVELOPE_DESCRIPTION,
    streams: Object.entries(STREAMS).map(([name, description]) => ({ name, description })),
    routing: {
      fields: routingFieldDocs().map((f) => ({
        name: f.name,
        type: typeLabel(f.schema),
        description: f.description,
        required: f.required,
        set_by_picket_in_scopes: f.producedIn,
      })),
      schema: Routing,
      produced: {
        required_by_scope: PRODUCED_REQUIRED,
        schemas: PRODUCED_ROUTING,
      },
    },
    events: listEvents().map((e) => ({
      event_type: e.eventType,
      ...(e.family ? { family: e.family } : {}),
      stream: e.stream,
      producer: e.producer,
      trigger: e.trigger,
      description: e.description,
      routing_scope: e.routingScope,
      payload_key: e.payloadKey,
      ...(e.routingNote ? { routing_note: e.routingNote } : {}),
      fields: e.fields,
      schema: e.payloadSchema,
      example: exampleEnvelope(e),
    })),
  });
}
