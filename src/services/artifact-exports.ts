// Exports: one or more artifacts packaged as a tar.gz (tar-stream + node:zlib) in the background. The
// request is answered at once with an export_id; when the package is on disk the export turns ready and
// `export_complete` is emitted once (the store's pending → ready step happens for one caller only).
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { ArtifactExportRecord, ArtifactRecord } from '../domain/artifacts.js';
import { newId } from '../domain/ids.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import { exportCompleteEvent } from '../sources/artifacts/artifact-events.js';
import type { Store, TaskWrites } from '../store/store.js';
import type { ArtifactContent } from './artifact-content.js';

export const MAX_EXPORT_ARTIFACTS = 100;

export interface ArtifactExportsOptions {
  store: Store;
  content: ArtifactContent;
  emit: (events: ReadonlyArray<PipelineEvent>, writes?: TaskWrites) => Promise<void>;
  now: () => number;
  logger: Logger;
}

/** Name of an artifact inside the package: its log_id, then the base name of its original path. */
export function entryName(a: ArtifactRecord): string {
  const base = path.posix.basename(a.original_path.replace(/\\/g, '/')).replace(/[^A-Za-z0-9._-]/g, '_');
  return `${a.log_id}/${base === '' || base === '.' || base === '..' ? 'artifact' : base}`;
}

export class ArtifactExports {
  private readonly running = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly o: ArtifactExportsOptions) {}

  /** Records the export and starts packaging it; null when an artifact is not the organization's. */
  async request(oid: string, logIds: ReadonlyArray<string>): Promise<{ export: ArtifactExportRecord } | { missing: string }> {
    for (const id of logIds) if (!(await this.o.store.getArtifact(oid, id))) return { missing: id };
    const record: ArtifactExportRecord = {
      export_id: newId(), oid, log_ids: [...new Set(logIds)], state: 'pending', size: 0, error: null, created: this.o.now(), completed: null,
    };
    await this.o.store.createArtifactExport(record);
    this.start(record);
    return { export: record };
  }

  /** Restarts packaging of exports left pending by a previous run. */
  async resume(): Promise<void> {
    for (const e of await this.o.store.listPendingArtifactExports()) this.start(e);
  }

  /** Waits for the packaging under way (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  private start(e: ArtifactExportRecord): void {
    if (this.closed) return;
    const job = this.build(e)
      .catch((err: unknown) => this.o.logger.error({ err, export_id: e.export_id }, 'artifact export failed'))
      .finally(() => this.running.delete(job));
    this.running.add(job);
  }

  private async build(e: ArtifactExportRecord): Promise<void> {
    const artifacts: ArtifactRecord[] = [];
    for (const id of e.log_ids) {
      const a = await this.o.store.getArtifact(e.oid, id);
      if (!a) {
        await this.o.store.finishArtifactExport(e.export_id, { state: 'failed', error: `artifact ${id} no longer exists` }, this.o.now());
        return;
      }
      artifacts.push(a);
    }
    const file = this.o.content.exportPath(e.export_id);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = await this.o.content.tempPath();
    try {
      const pack = tar.pack();
      const written = pipeline(pack, createGzip(), createWriteStream(tmp, { mode: 0o600 }));
      for (const a of artifacts) {
        const entry = pack.entry({ name: entryName(a), size: a.size, mtime: new Date(a.created), mode: 0o644 });
        await pipeline(this.o.content.open(a.sha256), entry);
      }
      pack.finalize();
      await written;
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      await this.o.store.finishArtifactExport(e.export_id, { state: 'failed', error: (err as Error).message }, this.o.now());
      throw err;
    }
    const size = (await fs.stat(file)).size;
    const now = this.o.now();
    if (await this.o.store.finishArtifactExport(e.export_id, { state: 'ready', size }, now)) {
      await this.o.emit([exportCompleteEvent(e.oid, e.export_id, artifacts, size, now)], { announce: { exports: [e.export_id] } });
      this.o.logger.info({ oid: e.oid, export_id: e.export_id, artifacts: artifacts.length, size }, 'artifact export ready');
    }
  }
}
