// Organization-level platform events outside the sensor timelines: artifacts (ingest, export_complete),
// usage metering (billing_record, whose envelope is `{record}`) and the audit trail of API actions.
import { Type, type Static } from 'typebox';
import { defineEvent } from './definition.js';
import { Count, EpochSeconds, Payload, PATTERNS, Text, Uuid } from './primitives.js';

const artifactFields = {
  size: Count('Size of the artifact in bytes.'),
  source: Text('Where the artifact came from: the sid of the sensor that uploaded it, or a source name.'),
  original_path: Text('Path of the artifact on its source.'),
};

export const IngestPayload = Payload(
  { ...artifactFields, original_md5: Text('MD5 of the artifact as given by its source (not checked by Picket).') },
  'Payload of ingest.',
);
export type IngestPayload = Static<typeof IngestPayload>;

export const ExportCompletePayload = Payload(
  { ...artifactFields, export_id: Uuid('Identifier of the export, used to download it.') },
  'Payload of export_complete.',
);
export type ExportCompletePayload = Static<typeof ExportCompletePayload>;

/** The `record` of a billing_record envelope (`{record, routing?}`). */
export const BillingRecord = Payload(
  {
    cat: Text('Category of usage, e.g. "extension", "output", "sensor".'),
    k: Text('Metric key, e.g. "bytes_tx" or "ext-strelka:bytes_scanned".'),
    oid: Uuid('Organization billed.'),
    record_id: Text('Unique id of the record: "<uuid>-<n>".'),
    ts: Text('Start of the metered period, UTC, written YYYY-MM-DD HH:MM:SS.', { pattern: PATTERNS.sqlDateTime.pattern }),
    v: Type.Number({ minimum: 0, description: 'Amount used in the period, in the unit of the key.' }),
  },
  'Usage metering record: per organization, per key, per period.',
);
export type BillingRecord = Static<typeof BillingRecord>;

export const AuditPayload = Payload(
  {
    oid: Text('The organization acted on.'),
    ts: EpochSeconds('When the call was answered, Unix seconds.'),
    etype: Text('Kind of action, e.g. "sensor_delete", "installation_key_create", "quota_set".'),
    msg: Text('What happened, in one human sentence.'),
    ident: Text('Who did it: the API key or user that made the call.'),
    origin: Text('Where the call came from: the client address.'),
    entity: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'What was acted on, e.g. {"sid": "..."}.' })),
    mtd: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Details of the request (parameters, old and new values).' })),
    error: Type.Optional(Text('Set when the action failed: the error returned to the caller.')),
  },
  'Payload of audit.',
);
export type AuditPayload = Static<typeof AuditPayload>;

export const PLATFORM_EVENTS = [
  defineEvent({
    eventType: 'ingest',
    stream: 'artifact',
    producer: 'cloud',
    trigger: 'An artifact (file, pcap, log) has been uploaded and stored.',
    description: 'A new artifact has been ingested.',
    routingScope: 'artifact',
    payloadSchema: IngestPayload,
    example: { size: 2048, source: 'a75cc927-bf28-4178-a42d-25ecc8a6be81', original_path: '/data/pcap/dat.pcap', original_md5: '0cc175b9c0f1b6a831c399e269772661' },
    seed: { page: 'platform-events', heading: 'INGEST', hasSample: true },
  }),
  defineEvent({
    eventType: 'export_complete',
    stream: 'artifact',
    producer: 'cloud',
    trigger: 'An export of artifact data is finished and ready for download.',
    description: 'An export of artifact data is completed and ready for download.',
    routingScope: 'artifact',
    payloadSchema: ExportCompletePayload,
    example: { size: 2048, source: 'a75cc927-bf28-4178-a42d-25ecc8a6be81', original_path: '/data/pcap/dat.pcap', export_id: 'd9ae5c17-d519-4ef5-a4ac-c454a95d31ca' },
    seed: { page: 'platform-events', heading: 'EXPORT_COMPLETE', hasSample: true },
  }),
  defineEvent({
    eventType: 'billing_record',
    stream: 'billing',
    producer: 'cloud',
    trigger: 'Usage is metered: one record per organization, per key, per period.',
    description: 'A billable usage record of the organization. The envelope is `{record, routing?}`, not `{routing, event}`.',
    routingScope: 'org',
    payloadKey: 'record',
    payloadSchema: BillingRecord,
    example: { cat: 'output', k: 'bytes_tx', oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db', record_id: '3bbbe4d9-925b-4538-bcad-e2e1ba2be923-0', ts: '2024-05-30 00:00:00', v: 2797 },
    routingNote: 'routing is optional on the wire (the seed sample has none); Picket always adds one with oid, event_type, event_time and event_id.',
    seed: { page: 'platform-events', heading: 'billing_record', hasSample: true },
  }),
  defineEvent({
    eventType: 'audit',
    stream: 'audit',
    producer: 'cloud',
    trigger: 'Every mutating API call (who did what), successful or not; routing.event_type is "audit", the kind of action is etype.',
    description: 'Audit trail of the organization: one event per API action that changes something.',
    routingScope: 'org',
    payloadSchema: AuditPayload,
    example: {
      oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db',
      ts: 1717029877,
      etype: 'sensor_delete',
      msg: 'sensor a75cc927-bf28-4178-a42d-25ecc8a6be81 deleted',
      ident: 'admin-key',
      origin: '10.0.0.12',
      entity: { sid: 'a75cc927-bf28-4178-a42d-25ecc8a6be81' },
    },
  }),
];
