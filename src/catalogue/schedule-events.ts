// Schedule events: ticks the cloud emits once per period per org, per sensor and per cloud adapter.
// Names are `<freq>_per_<scope>`; each name is its own catalogue entry, generated from three families.
import { Type, type Static, type TSchema } from 'typebox';
import { defineEvent, type EventDefinition, type RoutingScope } from './definition.js';
import { Count, EpochMillis, EpochSeconds, Nested, Payload, Text, Uuid } from './primitives.js';

export const SCHEDULE_FREQUENCIES = {
  '30m': 1800,
  '1h': 3600,
  '3h': 10800,
  '6h': 21600,
  '12h': 43200,
  '24h': 86400,
  '168h': 604800,
} as const;
export type ScheduleFrequency = keyof typeof SCHEDULE_FREQUENCIES;
export type ScheduleScope = 'org' | 'sensor' | 'cloud_adapter';
export type ScheduleEventType = `${ScheduleFrequency}_per_${ScheduleScope}`;

const SCHEDULE_RE = /^(30m|1h|3h|6h|12h|24h|168h)_per_(org|sensor|cloud_adapter)$/;

/** Seconds of the period a schedule event name stands for (`1h_per_org` → 3600), else undefined. */
export function scheduleFrequencyOf(eventType: string): number | undefined {
  const m = SCHEDULE_RE.exec(eventType);
  return m ? SCHEDULE_FREQUENCIES[m[1] as ScheduleFrequency] : undefined;
}

/** Any `*_per_org|sensor|cloud_adapter` name is reserved for the cloud, even with an unknown period. */
export const RESERVED_SCHEDULE_RE = /_per_(org|sensor|cloud_adapter)$/;

const frequency = Type.Unsafe<number>({
  type: 'integer',
  enum: Object.values(SCHEDULE_FREQUENCIES),
  description: 'Length of the period in seconds (1800 for 30m ... 604800 for 168h).',
});

const publishedAt = EpochMillis('When the runtime metadata was published, Unix ms.');

export const PerOrgPayload = Payload({ frequency }, 'Payload of <freq>_per_org.');
export type PerOrgPayload = Static<typeof PerOrgPayload>;

export const PerSensorPayload = Payload(
  {
    frequency,
    runtime_mtd: Nested(
      {
        entity_name: Uuid('The sensor id.'),
        entity_type: Type.Literal('sensor', { description: 'Always "sensor".' }),
        mtd: Nested(
          {
            bytes_recv: Count('Bytes received from the sensor in its current connection.'),
            conn_at: EpochSeconds('When the current connection was established, Unix seconds.'),
            eps_in: Type.Number({ minimum: 0, description: 'Events per second received from the sensor.' }),
            eps_out: Type.Number({ minimum: 0, description: 'Events per second sent to the sensor.' }),
            q_size: Count('Events queued for the sensor.'),
          },
          'Connection metrics of the sensor.',
        ),
        published_at: publishedAt,
      },
      'Runtime metadata of the sensor at the tick.',
    ),
  },
  'Payload of <freq>_per_sensor.',
);
export type PerSensorPayload = Static<typeof PerSensorPayload>;

export const PerCloudAdapterPayload = Payload(
  {
    frequency,
    adapter_name: Text('Name of the cloud adapter.'),
    runtime_mtd: Nested(
      {
        entity_name: Text('Identifier of the adapter.'),
        entity_type: Type.Literal('adapter', { description: 'Always "adapter".' }),
        mtd: Nested(
          {
            platform: Text('Platform of the data the adapter ingests, e.g. "office365".'),
            hostname: Text('Hostname the adapter reports as.'),
            adapter_type: Text('Type of adapter, e.g. "office365".'),
          },
          'Description of the adapter.',
        ),
        published_at: publishedAt,
      },
      'Runtime metadata of the adapter at the tick.',
    ),
  },
  'Payload of <freq>_per_cloud_adapter.',
);
export type PerCloudAdapterPayload = Static<typeof PerCloudAdapterPayload>;

interface Family {
  scope: ScheduleScope;
  routingScope: RoutingScope;
  schema: TSchema;
  per: string;
  example: (seconds: number) => unknown;
}

const FAMILIES: Family[] = [
  { scope: 'org', routingScope: 'org', schema: PerOrgPayload, per: 'organization (with a sensor online in the last 7 days)', example: (frequency) => ({ frequency }) },
  {
    scope: 'sensor',
    routingScope: 'sensor',
    schema: PerSensorPayload,
    per: 'sensor (online at least once in the last 30 days)',
    example: (frequency) => ({
      frequency,
      runtime_mtd: {
        entity_name: 'a75cc927-bf28-4178-a42d-25ecc8a6be81',
        entity_type: 'sensor',
        mtd: { bytes_recv: 6202524, conn_at: 1717020000, eps_in: 1.5, eps_out: 0, q_size: 0 },
        published_at: 1717029877123,
      },
    }),
  },
  {
    scope: 'cloud_adapter',
    routingScope: 'org',
    schema: PerCloudAdapterPayload,
    per: 'cloud adapter',
    example: (frequency) => ({
      frequency,
      adapter_name: 'office-audit',
      runtime_mtd: {
        entity_name: '81c72a07-9540-4341-9c35-66f6cfe1b9d7',
        entity_type: 'adapter',
        mtd: { platform: 'office365', hostname: 'office-365-audit', adapter_type: 'office365' },
        published_at: 1717029877123,
      },
    }),
  },
];

export const SCHEDULE_EVENTS: EventDefinition[] = FAMILIES.flatMap((f) =>
  (Object.entries(SCHEDULE_FREQUENCIES) as [ScheduleFrequency, number][]).map(([freq, seconds]) =>
    defineEvent({
      eventType: `${freq}_per_${f.scope}`,
      family: `*_per_${f.scope}`,
      stream: 'schedule',
      producer: 'cloud',
      trigger: `Every ${freq} (${seconds} s), once per ${f.per}.`,
      description: `Schedule tick, emitted once per period per ${f.scope.replace('_', ' ')}; the period is in the name and in event.frequency. Rules on the schedule stream use it to run periodic actions.`,
      routingScope: f.routingScope,
      payloadSchema: f.schema,
      example: f.example(seconds) as Static<TSchema>,
      ...(f.scope === 'org'
        ? { routingNote: 'routing.sid is 00000000-0000-0000-0000-000000000000 and routing.tags is [].', exampleRouting: { sid: '00000000-0000-0000-0000-000000000000', tags: [] } }
        : {}),
      seed: { page: 'platform-events', heading: `*_per_${f.scope}`, hasSample: true },
    }),
  ),
);
