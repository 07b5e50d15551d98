// The `routing` half of every envelope (decisions.md §1, platform-reference.md §1.2). Two readings:
// loose, for events from elsewhere (the seed samples carry only some fields), and produced, for events
// Picket wrote itself: event_id and the fields of the event's routing scope are required, event_time
// must be milliseconds, and no field outside the documented list may appear.
import { Type, type Static, type TSchema } from 'typebox';
import type { RoutingScope } from './definition.js';
import { EpochMillis, MAX_EPOCH_MS, NullableUuid, PATTERNS, Text, UNIT_KEYWORD, Uuid } from './primitives.js';

const FIELD = {
  oid: Uuid('Organization id.'),
  sid: NullableUuid('Sensor id. Per-org events use 00000000-0000-0000-0000-000000000000.'),
  iid: NullableUuid('Installation key the sensor enrolled with.'),
  did: Type.Unsafe<string | null>({
    type: ['string', 'null'],
    pattern: PATTERNS.uuidOrEmpty.pattern,
    description: 'Device id shared by sensors on the same hardware; null or "" when unknown.',
  }),
  plat: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'Platform code in decimal, e.g. 268435456 windows, 536870912 linux, 805306368 macos.' }),
  arch: Type.Integer({ minimum: 0, maximum: 255, description: 'Architecture code: 1 x86, 2 x64, 3 arm, 4 arm64, 5 alpine64, 6 chromium, 7 wireguard, 8 arml, 9 usp_adapter.' }),
  hostname: Text('Hostname of the sensor when the event was routed.'),
  ext_ip: Text('Public address the sensor connects from, as the cloud sees it.'),
  int_ip: Text('LAN address the sensor reported.'),
  tags: Type.Array(Type.String(), { description: 'The sensor\'s tags at the moment the event was routed.' }),
  event_type: Text('Name of the event, case-sensitive; selects the payload schema.', { pattern: PATTERNS.eventType.pattern }),
  event_time: Type.Integer({ minimum: 0, maximum: MAX_EPOCH_MS, [UNIT_KEYWORD]: 'epoch-ms', description: 'When the event happened, Unix milliseconds (from the endpoint for sensor events).' }),
  event_id: Uuid('Unique id of the event.'),
  investigation_id: Text('Investigation id of the task that caused the event; ids starting with "__" are kept out of outputs.'),
  this: Text('Atom of the object the event is about.', { maxLength: 64 }),
  parent: Text('Atom of the object that created it.', { maxLength: 64 }),
  target: Text('Atom of a second object the event involves.', { maxLength: 64 }),
  ext_plat: Text('Multi-platform adapters only: the platform of the endpoint being reported.'),
  moduleid: Type.Integer({ minimum: 0, description: 'Sensor module or collector that produced the event.' }),
  log_id: Text('Artifact events only: id of the artifact.'),
  log_type: Text('Artifact events only: type of the artifact, e.g. "pcap".'),
  latency: Type.Integer({ minimum: 0, description: 'Detections only: milliseconds between the event and the detection.' }),
} as const;

export type RoutingField = keyof typeof FIELD;
export const ROUTING_FIELD_NAMES = Object.keys(FIELD) as RoutingField[];

/** Required in every envelope, whoever wrote it. */
export const ALWAYS_REQUIRED: readonly RoutingField[] = ['oid', 'event_type', 'event_time'];

const PRODUCED_BASE: readonly RoutingField[] = [...ALWAYS_REQUIRED, 'event_id'];

/** Required when Picket produced the event, by the event's routing scope. */
export const PRODUCED_REQUIRED: Record<RoutingScope, readonly RoutingField[]> = {
  sensor: [...PRODUCED_BASE, 'sid', 'iid', 'plat', 'arch', 'hostname', 'ext_ip', 'int_ip', 'tags'],
  org: PRODUCED_BASE,
  artifact: [...PRODUCED_BASE, 'log_id', 'log_type'],
};

/** Loose routing: the three fields every envelope has, every other documented field typed when present. */
export const Routing = Type.Object(
  {
    oid: FIELD.oid,
    event_type: FIELD.event_type,
    event_time: FIELD.event_time,
    event_id: Type.Optional(FIELD.event_id),
    sid: Type.Optional(FIELD.sid),
    iid: Type.Optional(FIELD.iid),
    did: Type.Optional(FIELD.did),
    plat: Type.Optional(FIELD.plat),
    arch: Type.Optional(FIELD.arch),
    hostname: Type.Optional(FIELD.hostname),
    ext_ip: Type.Optional(FIELD.ext_ip),
    int_ip: Type.Optional(FIELD.int_ip),
    tags: Type.Optional(FIELD.tags),
    investigation_id: Type.Optional(FIELD.investigation_id),
    this: Type.Optional(FIELD.this),
    parent: Type.Optional(FIELD.parent),
    target: Type.Optional(FIELD.target),
    ext_plat: Type.Optional(FIELD.ext_plat),
    moduleid: Type.Optional(FIELD.moduleid),
    log_id: Type.Optional(FIELD.log_id),
    log_type: Type.Optional(FIELD.log_type),
    latency: Type.Optional(FIELD.latency),
  },
  { additionalProperties: true, description: 'Routing of an event: who it is about, what it is, when it happened.' },
);
export type Routing = Static<typeof Routing>;

/** Routing of an event Picket produced about a sensor (what RoutingTemplate writes). */
export type ProducedSensorRouting = Routing & {
  event_id: string;
  sid: string;
  iid: string;
  plat: number;
  arch: number;
  hostname: string;
  ext_ip: string;
  int_ip: string;
  tags: string[];
};

/** Stricter field types when Picket produced the event. */
function descriptionOf(schema: TSchema): string {
  const d = (schema as { description?: unknown }).description;
  return typeof d === 'string' ? d : '';
}

function producedField(name: RoutingField, scope: RoutingScope): TSchema {
  if (name === 'event_time') return EpochMillis('When the event happened, Unix milliseconds.');
  if (scope === 'sensor' && (name === 'sid' || name === 'iid')) return Uuid(descriptionOf(FIELD[name]));
  return FIELD[name];
}

function producedRouting(scope: RoutingScope): TSchema {
  const required = new Set<string>(PRODUCED_REQUIRED[scope]);
  const properties: Record<string, TSchema> = {};
  for (const name of ROUTING_FIELD_NAMES) {
    const schema = producedField(name, scope);
    properties[name] = required.has(name) ? schema : Type.Optional(schema);
  }
  return Type.Object(properties, {
    additionalProperties: false,
    description: `Routing of a ${scope}-scoped event produced by Picket.`,
  });
}

export const PRODUCED_ROUTING: Record<RoutingScope, TSchema> = {
  sensor: producedRouting('sensor'),
  org: producedRouting('org'),
  artifact: producedRouting('artifact'),
};

/** A routing field as documented in docs/events.md and the catalogue document. */
export interface RoutingFieldDoc {
  name: RoutingField;
  schema: TSchema;
  description: string;
  /** Required in every envelope. */
  required: boolean;
  /** Scopes in which Picket always sets it. */
  producedIn: RoutingScope[];
}

export function routingFieldDocs(): RoutingFieldDoc[] {
  return ROUTING_FIELD_NAMES.map((name) => ({
    name,
    schema: FIELD[name],
    description: descriptionOf(FIELD[name]),
    required: ALWAYS_REQUIRED.includes(name),
    producedIn: (Object.keys(PRODUCED_REQUIRED) as RoutingScope[]).filter((s) => PRODUCED_REQUIRED[s].includes(name)),
  }));
}
