// POST /ingest as a source: an upload (whole, or numbered parts ending with `done`) becomes one stored
// artifact and one `ingest` event. Parts are numbered from 0 (platform-reference.md §6.1: `0..n`, the last
// one `done`). Idempotent on lc-payload-id: a payload id already stored, or a part already received, is
// acknowledged and changes nothing.
import { newId } from '../../domain/ids.js';
import type { ArtifactRecord } from '../../domain/artifacts.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import type { ArtifactContent } from '../../services/artifact-content.js';
import type { Store, TaskWrites } from '../../store/store.js';
import { ingestEvent } from './artifact-events.js';
import type { IngestHeaders } from './ingest-headers.js';

const DAY_MS = 86_400_000;

export type IngestOutcome =
  | { kind: 'stored'; artifact: ArtifactRecord }
  | { kind: 'duplicate'; artifact: ArtifactRecord }
  | { kind: 'part'; part: number; duplicate: boolean }
  /** `done` arrived but parts are missing (numbers must run 0, 1, 2, … without gaps): send them, then `done` again. */
  | { kind: 'incomplete'; missing: number[] }
  | { kind: 'too_large'; size: number };

export interface ArtifactIngestOptions {
  store: Store;
  content: ArtifactContent;
  /** Submits events to the pipeline; resolves once stored. */
  /** Submits events to the pipeline; `writes` ride the same commit (the artifact marked announced). */
  emit: (events: ReadonlyArray<PipelineEvent>, writes?: TaskWrites) => Promise<void>;
  now: () => number;
  /** Largest artifact accepted (all parts together), bytes. */
  maxBytes: number;
}

export class ArtifactIngest {
  /** Requests of one upload (oid, payload id) run one after the other, so a part sent twice at once is written once. */
  private readonly uploads = new Map<string, Promise<unknown>>();

  constructor(private readonly o: ArtifactIngestOptions) {}

  receive(oid: string, h: IngestHeaders, body: Buffer): Promise<IngestOutcome> {
    const key = `${oid}\n${h.payloadId}`;
    const run = (this.uploads.get(key) ?? Promise.resolve()).then(() => this.receiveNow(oid, h, body));
    const tail = run.catch(() => undefined);
    this.uploads.set(key, tail);
    void tail.then(() => {
      if (this.uploads.get(key) === tail) this.uploads.delete(key);
    });
    return run;
  }

  private async receiveNow(oid: string, h: IngestHeaders, body: Buffer): Promise<IngestOutcome> {
    const existing = await this.o.store.getArtifactByPayloadId(oid, h.payloadId);
    if (existing) return { kind: 'duplicate', artifact: existing };
    if (h.part.kind === 'single') {
      if (body.length > this.o.maxBytes) return { kind: 'too_large', size: body.length };
      return this.finish(oid, h, [body]);
    }
    if (h.part.kind === 'part') return this.receivePart(oid, h, h.part.number, body);

    // `done`: its body is the last part, after every numbered one.
    const parts = await this.o.store.listArtifactParts(oid, h.payloadId);
    const missing = gaps(parts.map((p) => p.part));
    if (missing.length > 0) return { kind: 'incomplete', missing };
    const size = parts.reduce((n, p) => n + p.size, 0) + body.length;
    if (size > this.o.maxBytes) return { kind: 'too_large', size };
    const files = parts.map((p) => this.o.content.partPath(oid, h.payloadId, p.part));
    const outcome = await this.finish(oid, h, [...files, body]);
    await this.o.content.removeUpload(oid, h.payloadId);
    return outcome;
  }

  private async receivePart(oid: string, h: IngestHeaders, part: number, body: Buffer): Promise<IngestOutcome> {
    const parts = await this.o.store.listArtifactParts(oid, h.payloadId);
    if (parts.some((p) => p.part === part)) return { kind: 'part', part, duplicate: true };
    const size = parts.reduce((n, p) => n + p.size, 0) + body.length;
    if (size > this.o.maxBytes) return { kind: 'too_large', size };
    // Bytes first, then the row: a part is "received" only once its bytes are on disk.
    await this.o.content.writePart(oid, h.payloadId, part, body);
    const fresh = await this.o.store.putArtifactPart({ oid, payload_id: h.payloadId, part, size: body.length, received: this.o.now() });
    return { kind: 'part', part, duplicate: !fresh };
  }

  private async finish(oid: string, h: IngestHeaders, sources: ReadonlyArray<Buffer | string>): Promise<IngestOutcome> {
    const outcome = await this.o.content.exclusive(async (): Promise<IngestOutcome> => {
      const stored = await this.o.content.store(sources);
      const now = this.o.now();
      const artifact: ArtifactRecord = {
        log_id: newId(), oid, payload_id: h.payloadId, log_type: h.logType, source: h.source, original_path: h.originalPath,
        size: stored.size, sha256: stored.sha256, md5: stored.md5, created: now, expires: now + h.retentionDays * DAY_MS,
      };
      if (await this.o.store.createArtifact(artifact)) return { kind: 'stored', artifact };
      // A concurrent upload of the same payload id won: its artifact is the answer (the content is shared or unreferenced).
      const winner = await this.o.store.getArtifactByPayloadId(oid, h.payloadId);
      if (!winner) throw new Error(`artifact ${h.payloadId} vanished while being stored`);
      if (!(await this.o.store.isArtifactContentReferenced(stored.sha256))) await this.o.content.remove(stored.sha256);
      return { kind: 'duplicate', artifact: winner };
    });
    // Only the call that stored the artifact emits: `ingest` once per artifact, stored in the same commit that
    // marks the artifact announced (a crash before it is made up for at the next start).
    if (outcome.kind === 'stored') await this.o.emit([ingestEvent(outcome.artifact, outcome.artifact.created)], { announce: { artifacts: [outcome.artifact.log_id] } });
    return outcome;
  }
}

/**
 * Numbered parts missing before `done` (the first 100): numbering starts at 0 and runs without gaps up to
 * the highest part received. A `done` with no numbered part at all is missing part 0: a multi-part upload
 * has at least one numbered part (a file that fits in one request is sent without lc-part).
 */
export function gaps(numbers: ReadonlyArray<number>): number[] {
  const have = new Set(numbers);
  const last = numbers.length > 0 ? Math.max(...numbers) : 0;
  const missing: number[] = [];
  for (let n = 0; n <= last && missing.length < 100; n++) if (!have.has(n)) missing.push(n);
  return missing;
}
