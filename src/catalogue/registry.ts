// The catalogue itself: every event definition, indexed by its wire name.
import type { StreamName } from '../bus/event-bus.js';
import type { CatalogueEntry, EventDefinition } from './definition.js';
import { DEPLOYMENT_EVENTS } from './deployment-events.js';
import { describeFields } from './fields.js';
import { FLOW_CONTROL_EVENTS } from './flow-control-events.js';
import { LIFECYCLE_EVENTS } from './lifecycle-events.js';
import { PLATFORM_EVENTS } from './platform-events.js';
import { RESERVED_SCHEDULE_RE, SCHEDULE_EVENTS } from './schedule-events.js';
import { TASKING_EVENTS } from './tasking-events.js';

/** Bumped when an event is added or a payload changes incompatibly. */
export const CATALOGUE_VERSION = 1;

function toEntry(d: EventDefinition): CatalogueEntry {
  return Object.freeze({
    eventType: d.eventType,
    family: d.family,
    stream: d.stream,
    producer: d.producer,
    trigger: d.trigger,
    description: d.description,
    routingScope: d.routingScope,
    payloadKey: d.payloadKey ?? 'event',
    payloadSchema: d.payloadSchema,
    example: d.example,
    routingNote: d.routingNote,
    exampleRouting: d.exampleRouting,
    seed: d.seed,
    fields: Object.freeze(describeFields(d.payloadSchema)),
  });
}

const ENTRIES: readonly CatalogueEntry[] = Object.freeze(
  [...LIFECYCLE_EVENTS, ...TASKING_EVENTS, ...FLOW_CONTROL_EVENTS, ...DEPLOYMENT_EVENTS, ...PLATFORM_EVENTS, ...SCHEDULE_EVENTS].map(toEntry),
);

const BY_TYPE = new Map<string, CatalogueEntry>();
for (const e of ENTRIES) {
  if (BY_TYPE.has(e.eventType)) throw new Error(`event catalogue: ${e.eventType} is defined twice`);
  BY_TYPE.set(e.eventType, e);
}

/** Every event in the catalogue, in documentation order. */
export function listEvents(): CatalogueEntry[] {
  return [...ENTRIES];
}

/** The entry of an event type (exact, case-sensitive wire name), or undefined for types not in the catalogue. */
export function lookupEvent(eventType: string): CatalogueEntry | undefined {
  return BY_TYPE.get(eventType);
}

/**
 * The stream an event type is stored and published on; undefined for types not in the catalogue and for
 * ACK_MESSAGES, which is never stored. (Sensor telemetry of types not in the catalogue goes to `event`.)
 */
export function streamOf(eventType: string): StreamName | undefined {
  return BY_TYPE.get(eventType)?.stream ?? undefined;
}

/**
 * True for event types only the cloud may produce; a sensor sending one is refused. Any
 * `*_per_org|sensor|cloud_adapter` name is reserved for schedule events, even with an unknown period.
 */
export function isCloudProduced(eventType: string): boolean {
  const entry = BY_TYPE.get(eventType);
  if (entry) return entry.producer === 'cloud';
  return RESERVED_SCHEDULE_RE.test(eventType);
}
