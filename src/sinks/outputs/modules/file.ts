// The `file` output: JSON lines appended to a file on this node, fsynced before a batch counts as
// delivered; rotated by size and by age, rotated files optionally gzipped. A relative path lives under
// `<data dir>/outputs/`.
//
// Exactly once across crashes: after each batch the module records, beside the file
// (`<file>.position`), the last log position written and the file's length. On start it cuts the file
// back to that length (dropping a batch half written when the process died) and tells the delivery loop
// to continue after that position (skipping a batch written but not yet counted in the output's cursor).
// A test send's line written after the last batch is cut the same way at the next start.
//
// The record is one fixed-width write over itself on a file kept open: a batch costs the append, its
// fsync and that write (a stat and a new file renamed over the old one cost four more trips to the
// thread pool per batch, each a turn of a busy event loop). A process crash cannot lose it (it is in the
// page cache); a power cut could, so it is fsynced before the output's cursor is saved (syncPosition):
// the cursor on disk never covers a batch the record on disk does not.
import { constants as fsConstants, createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import type { OutputModule, OutputModuleContext, OutputRecord } from '../output-module.js';

const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;

async function exists(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

/** `events.jsonl` rotated at 2026-11-23T10:15:00.123Z becomes `events.jsonl.20261123T101500123Z`. */
export function rotatedName(file: string, at: Date): string {
  return `${file}.${at.toISOString().replace(/[-:.]/g, '')}`;
}

interface FilePosition {
  /** Last log position written to the file. */
  seq: number;
  /** The file's length right after it. */
  bytes: number;
}

/** Bytes of the position record: its JSON padded with spaces to a fixed width, so each write covers the last. */
const POSITION_RECORD_BYTES = 64;

function positionRecord(p: FilePosition): Buffer {
  const record = Buffer.alloc(POSITION_RECORD_BYTES, 0x20);
  record.write(JSON.stringify({ seq: p.seq, bytes: p.bytes }));
  record[POSITION_RECORD_BYTES - 1] = 0x0a;
  return record;
}

function parsePosition(text: string): FilePosition | null {
  try {
    const p = JSON.parse(text) as Partial<FilePosition>;
    return typeof p.seq === 'number' && typeof p.bytes === 'number' ? { seq: p.seq, bytes: p.bytes } : null;
  } catch {
    return null;
  }
}

/**
 * The records as JSON lines, encoded once into one buffer. A string built line by line is a tree of
 * pieces that measuring its UTF-8 length would copy flat, and writing it would encode it again.
 */
function jsonLines(records: ReadonlyArray<OutputRecord>): Buffer {
  let most = 0;
  for (const r of records) most += r.json.length * 3 + 1;
  const buf = Buffer.allocUnsafe(most);
  let at = 0;
  for (const r of records) {
    at += buf.write(r.json, at, 'utf8');
    buf[at++] = 0x0a;
  }
  return buf.subarray(0, at);
}

class FileOutput implements OutputModule {
  readonly batching = { maxRecords: 5000, maxWaitMs: 0 };
  private handle: FileHandle | null = null;
  private size = 0;
  private openedAt = 0;
  /** Only the delivery loop's instance keeps a position (a test send's instance must not cut the file). */
  private tracking = false;
  private position: FilePosition | null = null;
  /** The position file, open while the delivery loop's instance runs. */
  private positionHandle: FileHandle | null = null;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly maxBytes: number,
    private readonly maxAgeMs: number,
    private readonly compress: boolean,
  ) {}

  private get positionFile(): string {
    return `${this.file}.position`;
  }

  async resumeAfter(): Promise<number | null> {
    this.tracking = true;
    this.position = parsePosition(await readFile(this.positionFile, 'utf8').catch(() => ''));
    if (!this.position) {
      // First start on this file: what is in it now is the baseline a crash is cut back to.
      const bytes = await stat(this.file).then((st) => st.size, () => 0);
      await mkdir(path.dirname(this.file), { recursive: true });
      await this.savePosition({ seq: 0, bytes });
      return null;
    }
    return this.position.seq > 0 ? this.position.seq : null;
  }

  async syncPosition(): Promise<void> {
    await this.positionHandle?.datasync();
  }

  private async savePosition(position: FilePosition): Promise<void> {
    this.position = position;
    // A batch that finished after close() (its grace time over) stays unrecorded: cut and sent again at the next start.
    if (this.closed) return;
    let handle = this.positionHandle;
    if (!handle) {
      handle = await open(this.positionFile, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o640);
      // A record of an earlier version may be longer or shorter: the file becomes exactly one record.
      await handle.write(positionRecord(position), 0, POSITION_RECORD_BYTES, 0);
      await handle.truncate(POSITION_RECORD_BYTES);
      this.positionHandle = handle;
      return;
    }
    await handle.write(positionRecord(position), 0, POSITION_RECORD_BYTES, 0);
  }

  async send(records: ReadonlyArray<OutputRecord>): Promise<void> {
    const data = jsonLines(records);
    const bytes = data.length;
    if (this.handle && (this.size + bytes > this.maxBytes || (this.maxAgeMs > 0 && Date.now() - this.openedAt >= this.maxAgeMs)) && this.size > 0) {
      await this.rotate();
    }
    const handle = await this.openFile();
    try {
      await handle.appendFile(data);
      await handle.datasync();
      this.size += bytes;
      if (this.tracking && records.length > 0) await this.savePosition({ seq: records[records.length - 1]!.seq, bytes: this.size });
    } catch (err) {
      // The next attempt reopens the file, cut back to the last recorded length, and writes the batch again.
      await this.closeFile();
      throw new Error(`file ${this.file}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.closeFile();
    const position = this.positionHandle;
    this.positionHandle = null;
    // The output's last cursor is saved after its module closes: the record reaches the disk first.
    await position?.datasync().catch(() => undefined);
    await position?.close().catch(() => undefined);
  }

  private async openFile(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      this.handle = await open(this.file, 'a', 0o640);
      const st = await stat(this.file);
      this.size = st.size;
      if (this.tracking && this.position && st.size > this.position.bytes) {
        // Written after the last recorded batch: a batch the delivery loop never counted. It comes again.
        await this.handle.truncate(this.position.bytes);
        this.size = this.position.bytes;
      }
      this.openedAt = st.size > 0 ? st.birthtimeMs || Date.now() : Date.now();
      return this.handle;
    } catch (err) {
      throw new Error(`file ${this.file}: ${(err as Error).message}`);
    }
  }

  private async closeFile(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close().catch(() => undefined);
  }

  private async rotate(): Promise<void> {
    await this.closeFile();
    // Never over an earlier rotated file (two rotations within one millisecond): add -1, -2, ...
    const base = rotatedName(this.file, new Date());
    let target = base;
    for (let n = 1; (await exists(target)) || (await exists(`${target}.gz`)); n++) target = `${base}-${n}`;
    await rename(this.file, target);
    // The new file starts empty; what was written so far is in the rotated one.
    if (this.tracking && this.position) await this.savePosition({ seq: this.position.seq, bytes: 0 });
    if (this.compress) {
      await pipeline(createReadStream(target), createGzip(), createWriteStream(`${target}.gz`, { mode: 0o640 }));
      await unlink(target);
    }
  }
}

export const fileModule: OutputModuleDescriptor = {
  name: 'file',
  description: 'JSON lines appended to a file on the node, rotated by size and age, optionally gzipped when rotated.',
  fields: {
    dest_path: { type: 'string', required: true, description: 'file to append to; a relative path is under <data dir>/outputs/' },
    max_bytes: { type: 'integer', min: 1024, max: 1024 ** 4, description: `rotate when the file would grow beyond this many bytes (default ${DEFAULT_MAX_BYTES})` },
    sec_per_file: { type: 'integer', min: 1, max: 31 * 24 * 3600, description: 'rotate a file this many seconds after it was started (default: no time rotation)' },
    is_compression: { type: 'boolean', description: 'gzip rotated files (<name>.<time>.gz)' },
  },
  create(ctx: OutputModuleContext): OutputModule {
    const dest = String(ctx.fields.dest_path ?? '');
    if (!dest) throw new Error('file output: dest_path is required');
    const file = path.isAbsolute(dest) ? dest : path.join(ctx.dataDir, 'outputs', dest);
    if (!path.isAbsolute(dest) && !file.startsWith(path.join(ctx.dataDir, 'outputs') + path.sep)) throw new Error('file output: dest_path must stay inside <data dir>/outputs/');
    const maxBytes = typeof ctx.fields.max_bytes === 'number' ? ctx.fields.max_bytes : DEFAULT_MAX_BYTES;
    const maxAgeMs = typeof ctx.fields.sec_per_file === 'number' ? ctx.fields.sec_per_file * 1000 : 0;
    return new FileOutput(file, maxBytes, maxAgeMs, ctx.fields.is_compression === true);
  },
};
