// Artifacts of one node (docs/artifacts.md): content on disk, the ingest source, exports and the
// retention janitor, started and stopped together. Also what billing reads (bytes stored per organization).
import type { Logger } from '../observability/logger.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import { ArtifactIngest } from '../sources/artifacts/artifact-ingest.js';
import type { ArtifactRecord } from '../domain/artifacts.js';
import { exportCompleteEvent, ingestEvent } from '../sources/artifacts/artifact-events.js';
import type { Store, TaskWrites } from '../store/store.js';
import { ArtifactContent } from './artifact-content.js';
import { ArtifactExports } from './artifact-exports.js';
import { ArtifactJanitor } from './artifact-janitor.js';
import type { ArtifactUsage } from './artifact-usage.js';

export interface ArtifactServiceOptions {
  store: Store;
  dataDir: string;
  emit: (events: ReadonlyArray<PipelineEvent>, writes?: TaskWrites) => Promise<void>;
  now: () => number;
  logger: Logger;
  /** Largest artifact accepted, bytes. */
  maxBytes: number;
  /** Retention of an upload without lc-retention-days. */
  defaultRetentionDays: number;
  purgeIntervalMs: number;
}

export class ArtifactService implements ArtifactUsage {
  readonly content: ArtifactContent;
  readonly ingest: ArtifactIngest;
  readonly exports: ArtifactExports;
  readonly janitor: ArtifactJanitor;
  readonly defaultRetentionDays: number;

  constructor(private readonly o: ArtifactServiceOptions) {
    this.content = new ArtifactContent(o.dataDir);
    this.ingest = new ArtifactIngest({ store: o.store, content: this.content, emit: o.emit, now: o.now, maxBytes: o.maxBytes });
    this.exports = new ArtifactExports({ store: o.store, content: this.content, emit: o.emit, now: o.now, logger: o.logger });
    this.janitor = new ArtifactJanitor(o.store, this.content, o.logger, o.now, o.purgeIntervalMs);
    this.defaultRetentionDays = o.defaultRetentionDays;
  }

  async start(): Promise<void> {
    await this.announceMissed();
    await this.exports.resume();
    this.janitor.start();
  }

  async close(): Promise<void> {
    await this.janitor.stop();
    await this.exports.close();
  }

  /**
   * `ingest` and `export_complete` are stored in the same commit that marks their artifact or export
   * announced; one whose commit a crash prevented is announced now, so each is stored exactly once.
   */
  private async announceMissed(): Promise<void> {
    const { store, emit, now, logger } = this.o;
    for (let batch = await store.listUnannouncedArtifacts(500); batch.length > 0; batch = await store.listUnannouncedArtifacts(500)) {
      for (const a of batch) await emit([ingestEvent(a, now())], { announce: { artifacts: [a.log_id] } });
      logger.warn({ artifacts: batch.length }, 'announced artifacts whose ingest event a crash had prevented');
    }
    for (let batch = await store.listUnannouncedExports(500); batch.length > 0; batch = await store.listUnannouncedExports(500)) {
      for (const e of batch) {
        const artifacts = (await Promise.all(e.log_ids.map((id) => store.getArtifact(e.oid, id)))).filter((a): a is ArtifactRecord => a !== null);
        await emit([exportCompleteEvent(e.oid, e.export_id, artifacts, e.size, now())], { announce: { exports: [e.export_id] } });
      }
      logger.warn({ exports: batch.length }, 'announced exports whose export_complete event a crash had prevented');
    }
  }

  bytesStored(oid: string): Promise<number> {
    return this.o.store.artifactBytesStored(oid);
  }
}
