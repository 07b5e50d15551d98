// The shape of a catalogue entry: what each event-definition module declares, and what the registry adds.
import type { Static, TSchema } from 'typebox';
import type { StreamName } from '../bus/event-bus.js';

export type Producer = 'sensor' | 'cloud';

/**
 * Which routing fields an event carries when Picket produces it:
 * `sensor` the full sensor routing, `org` only the organization's, `artifact` the org's plus log_id/log_type.
 */
export type RoutingScope = 'sensor' | 'org' | 'artifact';

/** Where the payload sits in the envelope: `event` for all events except `billing_record` (`record`). */
export type PayloadKey = 'event' | 'record';

export type SeedPage = 'sensor-events' | 'platform-events';

/** Where the seed pages name the event, and whether they show a sample of it. */
export interface SeedReference {
  page: SeedPage;
  /** The heading as written on the page (platform headings are uppercase; the wire name may not be). */
  heading: string;
  hasSample: boolean;
}

export interface EventDefinition<S extends TSchema = TSchema> {
  /** The name on the wire, case-sensitive (routing.event_type). */
  eventType: string;
  /** For generated names (`1h_per_org`), the family they belong to (`*_per_org`). */
  family?: string;
  /** null: a protocol message that is counted, never stored or streamed (ACK_MESSAGES). */
  stream: StreamName | null;
  producer: Producer;
  /** When the event is produced, in one sentence. */
  trigger: string;
  description: string;
  routingScope: RoutingScope;
  payloadKey?: PayloadKey;
  payloadSchema: S;
  /** A payload as Picket produces it; rendered in docs/events.md and checked against the schema by tests. */
  example: Static<S>;
  /** Routing facts specific to this event (e.g. investigation_id echoed from the task). */
  routingNote?: string;
  /** Routing fields the example envelope adds or overrides (e.g. an investigation_id). */
  exampleRouting?: Record<string, unknown>;
  seed?: SeedReference;
}

/** Declares an event; the generic ties the example to the schema at compile time. */
export function defineEvent<S extends TSchema>(definition: EventDefinition<S>): EventDefinition {
  return definition as unknown as EventDefinition;
}

export interface FieldDoc {
  /** Dotted path inside the payload, e.g. `crash_context.FILE_ID`. */
  path: string;
  /** The type in words, e.g. `integer (Unix seconds)`. */
  type: string;
  description: string;
  /** Required within its parent object. */
  required: boolean;
}

export interface CatalogueEntry {
  readonly eventType: string;
  readonly family: string | undefined;
  readonly stream: StreamName | null;
  readonly producer: Producer;
  readonly trigger: string;
  readonly description: string;
  readonly routingScope: RoutingScope;
  readonly payloadKey: PayloadKey;
  readonly payloadSchema: TSchema;
  readonly example: unknown;
  readonly routingNote: string | undefined;
  readonly exampleRouting: Readonly<Record<string, unknown>> | undefined;
  readonly seed: SeedReference | undefined;
  readonly fields: readonly FieldDoc[];
}
