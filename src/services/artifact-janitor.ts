// Retention: deletes artifacts past their lc-retention-days (store rows, then their content when no other
// artifact shares it), exports older than EXPORT_KEEP_MS and parts of uploads abandoned for as long.
// Runs every interval and on demand (sweep), with an injectable clock.
import type { Logger } from '../observability/logger.js';
import type { Store } from '../store/store.js';
import type { ArtifactContent } from './artifact-content.js';
import { promises as fs } from 'node:fs';

const BATCH = 500;
/** Export packages and unfinished uploads are kept this long. */
export const EXPORT_KEEP_MS = 7 * 86_400_000;

export interface ArtifactSweep {
  artifacts: string[];
  exports: string[];
  uploads: number;
}

export class ArtifactJanitor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ArtifactSweep> | null = null;

  constructor(
    private readonly store: Store,
    private readonly content: ArtifactContent,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep().catch((err: unknown) => this.logger.error({ err }, 'artifact retention sweep failed')), this.intervalMs);
    this.timer.unref();
  }

  /** One sweep now; concurrent calls share the running sweep. */
  sweep(): Promise<ArtifactSweep> {
    this.running ??= this.purge().finally(() => (this.running = null));
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async purge(): Promise<ArtifactSweep> {
    const now = this.now();
    const sweep: ArtifactSweep = { artifacts: [], exports: [], uploads: 0 };
    for (;;) {
      const gone = await this.store.takeExpiredArtifacts(now, BATCH);
      for (const a of gone) {
        sweep.artifacts.push(a.log_id);
        await this.content.exclusive(async () => {
          if (!(await this.store.isArtifactContentReferenced(a.sha256))) await this.content.remove(a.sha256);
        });
      }
      if (gone.length < BATCH) break;
    }
    for (;;) {
      const gone = await this.store.takeFinishedArtifactExports(now - EXPORT_KEEP_MS, BATCH);
      for (const e of gone) {
        sweep.exports.push(e.export_id);
        await fs.rm(this.content.exportPath(e.export_id), { force: true });
      }
      if (gone.length < BATCH) break;
    }
    for (;;) {
      const gone = await this.store.takeStaleArtifactUploads(now - EXPORT_KEEP_MS, BATCH);
      for (const u of gone) await this.content.removeUpload(u.oid, u.payload_id);
      sweep.uploads += gone.length;
      if (gone.length < BATCH) break;
    }
    if (sweep.artifacts.length + sweep.exports.length + sweep.uploads > 0) {
      this.logger.info({ artifacts: sweep.artifacts.length, exports: sweep.exports.length, uploads: sweep.uploads }, 'artifact retention sweep');
    }
    return sweep;
  }
}
