// Complete example envelopes, as Picket writes them, for the documentation and the catalogue document.
// Everything is fixed (ids derive from the event type) so the generated docs are stable.
import { createHash } from 'node:crypto';
import type { CatalogueEntry } from './definition.js';

const EXAMPLE_TIME_MS = 1717029877123;

const SENSOR = {
  oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db',
  iid: 'ca812425-5a36-4c73-a0a0-935a8ace6451',
  sid: 'a75cc927-bf28-4178-a42d-25ecc8a6be81',
  did: null,
  plat: 536870912,
  arch: 2,
  hostname: 'linux-server-1',
  ext_ip: '104.196.34.101',
  int_ip: '172.17.0.2',
  tags: ['prod', 'web'],
};

/** A stable UUID-shaped id for the example of an event type. */
function exampleId(eventType: string): string {
  const h = createHash('sha256').update(`picket-example:${eventType}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The routing Picket writes for this event, with example values. */
export function exampleRouting(entry: CatalogueEntry): Record<string, unknown> {
  const timing = { event_type: entry.eventType, event_time: EXAMPLE_TIME_MS, event_id: exampleId(entry.eventType) };
  const base: Record<string, unknown> =
    entry.routingScope === 'sensor'
      ? { ...SENSOR, ...timing }
      : entry.routingScope === 'artifact'
        ? { oid: SENSOR.oid, log_id: 'f2b0e9d4-5c1a-4e8b-9a3f-0d6c7b8e9f10', log_type: 'pcap', ...timing }
        : { oid: SENSOR.oid, ...timing };
  return { ...base, ...entry.exampleRouting };
}

/** A complete example envelope of the event. */
export function exampleEnvelope(entry: CatalogueEntry): Record<string, unknown> {
  const routing = exampleRouting(entry);
  return entry.payloadKey === 'record' ? { record: entry.example, routing } : { routing, event: entry.example };
}
