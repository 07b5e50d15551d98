// Artifacts of one node (docs/artifacts.md): content on disk, the ingest source, exports and the
// retention janitor, started and stopped together. Also what billing reads (bytes stored per organization).
import type { Logger } from '../observability/logger.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import { ArtifactIngest } from '../sources/artifacts/artifact-ingest.js';
import type { Store } from '../store/store.js';
import { ArtifactContent } from './artifact-content.js';
import { ArtifactExports } from './artifact-exports.js';
import { ArtifactJanitor } from './artifact-janitor.js';
import type { ArtifactUsage } from './artifact-usage.js';

export interface ArtifactServiceOptions {
  store: Store;
  dataDir: string;
  emit: (events: ReadonlyArray<PipelineEvent>) => Promise<void>;
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
    await this.exports.resume();
    this.janitor.start();
  }

  async close(): Promise<void> {
    await this.janitor.stop();
    await this.exports.close();
  }

  bytesStored(oid: string): Promise<number> {
    return this.o.store.artifactBytesStored(oid);
  }
}
