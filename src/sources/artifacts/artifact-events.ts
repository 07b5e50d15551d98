// The artifact stream's events (decisions.md §2): `ingest` when an artifact is stored, `export_complete`
// when an export is ready. Routing is the organization's with the artifact's log_id and log_type.
import type { ExportCompletePayload, IngestPayload } from '../../catalogue/platform-events.js';
import { organizationEnvelope } from '../../pipeline/envelope.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import type { ArtifactRecord } from '../../domain/artifacts.js';

function artifactEvent(oid: string, eventType: 'ingest' | 'export_complete', log: { log_id: string; log_type: string }, payload: unknown, now: number): PipelineEvent {
  const { json, event_id, event_time } = organizationEnvelope({ oid, event_type: eventType, event_time: now, log_id: log.log_id, log_type: log.log_type }, payload);
  return { oid, sid: null, event_type: eventType, event_time, event_id, stream: 'artifact', json };
}

export function ingestEvent(a: ArtifactRecord, now: number): PipelineEvent {
  const payload: IngestPayload = { size: a.size, source: a.source, original_path: a.original_path, original_md5: a.md5 };
  return artifactEvent(a.oid, 'ingest', a, payload, now);
}

/**
 * One export_complete per export. An export of one artifact carries that artifact's log_id, log_type, source
 * and path; an export of several carries the export_id as log_id and log_type "export". size is the package's.
 */
export function exportCompleteEvent(oid: string, exportId: string, artifacts: ReadonlyArray<ArtifactRecord>, packageSize: number, now: number): PipelineEvent {
  const only = artifacts.length === 1 ? artifacts[0] : undefined;
  const payload: ExportCompletePayload = {
    size: packageSize,
    source: only ? only.source : 'picket',
    original_path: only ? only.original_path : `${exportId}.tar.gz`,
    export_id: exportId,
  };
  return artifactEvent(oid, 'export_complete', only ?? { log_id: exportId, log_type: 'export' }, payload, now);
}
