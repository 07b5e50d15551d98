// Artifact content on disk, addressed by its sha256 (the data layout in one place):
//   <data>/artifacts/<sha256[0:2]>/<sha256>        stored content, shared by artifacts with the same bytes
//   <data>/artifacts/parts/<oid>/<upload>/<n>      parts of a multi-part upload until its `done`
//   <data>/artifacts/exports/<export_id>.tar.gz    export packages
//   <data>/artifacts/tmp/                          files being written (renamed into place when complete)
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs, type ReadStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';

export interface StoredContent {
  sha256: string;
  md5: string;
  size: number;
}

export class ArtifactContent {
  readonly root: string;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'artifacts');
  }

  contentPath(sha256: string): string {
    return path.join(this.root, sha256.slice(0, 2), sha256);
  }

  partPath(oid: string, payloadId: string, part: number): string {
    return path.join(this.uploadDir(oid, payloadId), String(part));
  }

  /** The payload id is the client's text: its hash names the directory. */
  uploadDir(oid: string, payloadId: string): string {
    return path.join(this.root, 'parts', oid, createHash('sha256').update(payloadId).digest('hex'));
  }

  exportPath(exportId: string): string {
    return path.join(this.root, 'exports', `${exportId}.tar.gz`);
  }

  async tempPath(): Promise<string> {
    const dir = path.join(this.root, 'tmp');
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    return path.join(dir, randomUUID());
  }

  /** Writes a part's bytes (replacing a half-written earlier copy of the same part). */
  async writePart(oid: string, payloadId: string, part: number, bytes: Buffer): Promise<void> {
    const file = this.partPath(oid, payloadId, part);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = await this.tempPath();
    await fs.writeFile(tmp, bytes, { mode: 0o600 });
    await fs.rename(tmp, file);
  }

  async removeUpload(oid: string, payloadId: string): Promise<void> {
    await fs.rm(this.uploadDir(oid, payloadId), { recursive: true, force: true });
  }

  /**
   * Stores the concatenation of `sources` (buffers or files, in order) as content: hashed while written to
   * a temporary file, then renamed to its sha256 path (an existing copy of the same bytes is kept).
   */
  async store(sources: ReadonlyArray<Buffer | string>): Promise<StoredContent> {
    const tmp = await this.tempPath();
    const sha = createHash('sha256');
    const md5 = createHash('md5');
    let size = 0;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (const source of sources) {
        const stream = typeof source === 'string' ? createReadStream(source) : Readable.from([source]);
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          sha.update(chunk);
          md5.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      }
    }
    try {
      await pipeline(Readable.from(chunks()), createWriteStream(tmp, { mode: 0o600 }));
      const digest = sha.digest('hex');
      const file = this.contentPath(digest);
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await fs.rename(tmp, file);
      return { sha256: digest, md5: md5.digest('hex'), size };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /**
   * Runs `fn` alone among other exclusive calls: storing content and recording its artifact is one step,
   * and so is checking that content is unreferenced and deleting it, so a purge never deletes bytes an
   * upload of the same content has just stored.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  open(sha256: string): ReadStream {
    return createReadStream(this.contentPath(sha256));
  }

  async remove(sha256: string): Promise<void> {
    await fs.rm(this.contentPath(sha256), { force: true });
  }
}
