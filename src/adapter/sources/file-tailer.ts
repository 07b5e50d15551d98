// Follows a log file like `tail -F`: reads lines as they are appended, survives rotation by rename (the old
// file is read to its end, then the new file at the same path from its start) and by copytruncate (a file
// that shrinks, or whose first bytes change, is read again from its start), and resumes after a restart
// exactly after the last buffered line: each message carries the file's identity (device, inode, a CRC of
// its first bytes) and the offset after its line, in the same journal record (disk-buffer.ts).
//
// The file is polled (stat + read every `pollIntervalMs`), which works on every file system, including
// network ones where change notifications do not.
import { promises as fs, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../../observability/logger.js';
import type { LineEncoder } from './line-encoder.js';
import { LineSplitter, type SplitLine } from './line-splitter.js';
import type { LogSource, MessageSink } from './source.js';

/** Position in a file, stored with every message read from it. */
export interface FileCursor {
  dev: string;
  ino: string;
  /** Offset right after the last line buffered. */
  offset: number;
  /** CRC-32 of the first `head_len` bytes: tells a file truncated and refilled from the one read before. */
  head_len: number;
  head_crc: number;
}

export interface FileTailerOptions {
  path: string;
  sink: MessageSink;
  encoder: LineEncoder;
  logger: Logger;
  pollIntervalMs: number;
  /** Where to start in a file seen for the first time (no stored position): its beginning or its end. */
  readFrom: 'beginning' | 'end';
  maxLineBytes: number;
  /** After the path names a new file, the old one is read until it has been quiet this long. */
  rotateGraceMs?: number;
  readChunkBytes?: number;
}

const HEAD_BYTES = 256;

interface OpenFile {
  handle: fs.FileHandle;
  name: string;
  dev: string;
  ino: string;
  /** Bytes read so far (into the splitter). */
  readPos: number;
  /** Offset after the last complete line. */
  committed: number;
  headLen: number;
  headCrc: number;
  /**
   * The file's first bytes as this tailer read them (up to HEAD_BYTES), kept as the chunks come in: the
   * fingerprint is of what was read, never of a later look at the file (which a rewrite could already
   * have changed). null for a file taken up again at a saved offset: its fingerprint is read from the file.
   */
  head: Buffer | null;
  /** When the path was first seen to name another file (or none); 0 while it names this one. */
  rotatedAt: number;
}

export class FileTailer implements LogSource {
  readonly name: string;
  readonly finished: Promise<void> = new Promise(() => undefined);
  private readonly key: string;
  private readonly file: string;
  private readonly log: Logger;
  private readonly splitter: LineSplitter;
  private readonly chunk: Buffer;
  private readonly rotateGraceMs: number;
  private current: OpenFile | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly counters = { lines: 0, bytes: 0, truncated_lines: 0, rotations: 0, truncations: 0 };
  private waitingLogged = false;

  constructor(private readonly options: FileTailerOptions) {
    this.file = path.resolve(options.path);
    this.key = `file:${this.file}`;
    this.name = this.key;
    this.log = options.logger.child({ source: this.key });
    this.splitter = new LineSplitter(options.maxLineBytes);
    this.chunk = Buffer.allocUnsafe(options.readChunkBytes ?? 16 * 1024);
    this.rotateGraceMs = options.rotateGraceMs ?? Math.max(1000, 2 * options.pollIntervalMs);
  }

  async start(): Promise<void> {
    await this.resume();
    this.running = this.run().catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, 'file tailer failed');
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
    await this.current?.handle.close();
    this.current = null;
  }

  stats(): Record<string, number> {
    return { ...this.counters, not_json: this.options.encoder.notJson };
  }

  /** The file's current position, as stored with its messages. */
  get position(): FileCursor | undefined {
    const f = this.current;
    return f ? { dev: f.dev, ino: f.ino, offset: f.committed, head_len: f.headLen, head_crc: f.headCrc } : undefined;
  }

  // ---- the loop ----

  private async run(): Promise<void> {
    let atEnd = false;
    while (!this.stopping) {
      if (!this.current) {
        const st = await statOrUndefined(this.file);
        if (st) {
          await this.open(this.file, 0);
          this.recordPosition();
        } else {
          if (!this.waitingLogged) this.log.info('waiting for the file to appear');
          this.waitingLogged = true;
          await this.idle();
          continue;
        }
      }
      if (atEnd) {
        // Before reading what was added meanwhile: is it still the same file, and not truncated?
        await this.idle();
        if (this.stopping) break;
        atEnd = false;
        if (await this.checkFile()) continue;
        if (!this.current) continue;
      }
      atEnd = (await this.readChunk()) === 0;
    }
  }

  /** Reads one chunk from the current file; returns the bytes read (0 at its end). */
  private async readChunk(): Promise<number> {
    const f = this.current!;
    if (!this.options.sink.hasRoom()) {
      await Promise.race([this.options.sink.waitForRoom(), new Promise<void>((resolve) => (this.wake = resolve))]);
      if (this.stopping) return 0;
    }
    const { bytesRead } = await f.handle.read(this.chunk, 0, this.chunk.length, f.readPos);
    if (bytesRead === 0) return 0;
    if (f.head !== null && f.readPos < HEAD_BYTES) {
      f.head = Buffer.concat([f.head, this.chunk.subarray(0, Math.min(bytesRead, HEAD_BYTES - f.readPos))]);
      f.headLen = f.head.length;
      f.headCrc = crc32(f.head);
    }
    f.readPos += bytesRead;
    this.splitter.push(this.chunk.subarray(0, bytesRead), (line) => this.onLine(f, line));
    return bytesRead;
  }

  private onLine(f: OpenFile, line: SplitLine): void {
    f.committed += line.bytes;
    this.counters.bytes += line.bytes;
    if (line.truncated) {
      this.counters.truncated_lines++;
      this.log.warn({ offset: f.committed - line.bytes, bytes: line.bytes, max_line_bytes: this.options.maxLineBytes }, 'line longer than --max-line-bytes; cut');
    }
    const fields = this.options.encoder.encode(line.text, Date.now());
    if (!fields) return;
    this.counters.lines++;
    this.options.sink.append(fields, { key: this.key, value: this.cursorOf(f) });
  }

  /**
   * At the end of the current file: has it been truncated, or rotated away? Returns true when there is
   * something to read right away.
   */
  private async checkFile(): Promise<boolean> {
    const f = this.current!;
    const st = await statOrUndefined(this.file);
    if (st && String(st.dev) === f.dev && String(st.ino) === f.ino) {
      f.rotatedAt = 0;
      const size = Number(st.size);
      if (size < f.readPos || !(await this.headMatches(f, size))) {
        // copytruncate: the content was copied elsewhere and the file emptied (and maybe refilled).
        this.counters.truncations++;
        this.log.info({ size, offset: f.readPos }, 'file truncated (copytruncate); reading it again from its start');
        this.splitter.reset();
        f.readPos = 0;
        f.committed = 0;
        f.head = Buffer.alloc(0);
        f.headLen = 0;
        f.headCrc = 0;
        this.recordPosition();
        return true;
      }
      if (f.head === null && f.headLen < HEAD_BYTES && size > f.headLen) await this.refreshHead(f, size);
      return false;
    }
    // The path names another file, or none: rotated by rename (or deleted).
    const now = Date.now();
    if (f.rotatedAt === 0) {
      f.rotatedAt = now;
      this.log.info({ new_file: st !== undefined }, 'file rotated; reading the old one to its end');
      return false;
    }
    if (now - f.rotatedAt < this.rotateGraceMs) return false;
    // Whoever writes the old file has moved on: its last line may lack a LF.
    const tail = this.splitter.end();
    if (tail) this.onLine(f, tail);
    await f.handle.close();
    this.current = null;
    this.counters.rotations++;
    if (!st) return false;
    await this.open(this.file, 0);
    this.recordPosition();
    this.log.info({ ino: this.current!.ino }, 'following the new file');
    return true;
  }

  /** Where the previous run stopped, or where --read-from says for a file never read. */
  private async resume(): Promise<void> {
    const saved = parseCursor(this.options.sink.cursor(this.key));
    const st = await statOrUndefined(this.file);
    if (!saved) {
      if (!st) return;
      await this.open(this.file, this.options.readFrom === 'end' ? Number(st.size) : 0);
      if (this.options.readFrom === 'end') {
        // Lines end at LF: start after the last complete one.
        this.current!.committed = this.current!.readPos = await lastLineEnd(this.current!.handle, Number(st.size));
        this.recordPosition();
      }
      return;
    }
    if (st && String(st.dev) === saved.dev && String(st.ino) === saved.ino) {
      await this.open(this.file, await this.validOffset(this.file, saved, Number(st.size)));
      return;
    }
    // Rotated while the adapter was stopped: finish the old file if it is still beside the new one.
    const rotated = await findByIdentity(this.file, saved);
    if (rotated) {
      this.log.info({ rotated_to: rotated.name, offset: saved.offset }, 'file was rotated while the adapter was stopped; finishing the old one first');
      await this.open(rotated.name, await this.validOffset(rotated.name, saved, Number(rotated.st.size)));
      this.current!.rotatedAt = Date.now() - this.rotateGraceMs;
      return;
    }
    this.log.warn({ offset: saved.offset }, 'the file read before the restart is gone (rotated away or deleted); reading the current file from its start');
    if (st) {
      await this.open(this.file, 0);
      this.recordPosition();
    }
  }

  /** The stored offset if the file still holds what was read; else 0 (truncated or replaced meanwhile). */
  private async validOffset(name: string, saved: FileCursor, size: number): Promise<number> {
    if (size >= saved.offset && saved.head_len <= size) {
      const handle = await fs.open(name, 'r');
      try {
        if (saved.head_len === 0 || crc32(await readAt(handle, 0, saved.head_len)) === saved.head_crc) return saved.offset;
      } finally {
        await handle.close();
      }
    }
    this.log.warn({ file: name, offset: saved.offset, size }, 'file was truncated or replaced while the adapter was stopped; reading it from its start');
    return 0;
  }

  private async open(name: string, offset: number): Promise<void> {
    const handle = await fs.open(name, 'r');
    const st = await handle.stat({ bigint: true });
    const f: OpenFile = {
      handle, name, dev: String(st.dev), ino: String(st.ino), readPos: offset, committed: offset, headLen: 0, headCrc: 0, head: offset === 0 ? Buffer.alloc(0) : null, rotatedAt: 0,
    };
    if (f.head === null) await this.refreshHead(f, Number(st.size));
    this.splitter.reset();
    this.current = f;
    this.waitingLogged = false;
    this.log.info({ file: name, ino: f.ino, offset }, 'reading file');
  }

  private async refreshHead(f: OpenFile, size: number): Promise<void> {
    const len = Math.min(HEAD_BYTES, size);
    if (len <= f.headLen) return;
    const head = await readAt(f.handle, 0, len);
    f.headLen = head.length;
    f.headCrc = crc32(head);
  }

  private async headMatches(f: OpenFile, size: number): Promise<boolean> {
    if (f.headLen === 0 || size < f.headLen) return size >= f.headLen;
    return crc32(await readAt(f.handle, 0, f.headLen)) === f.headCrc;
  }

  private cursorOf(f: OpenFile): FileCursor {
    return { dev: f.dev, ino: f.ino, offset: f.committed, head_len: f.headLen, head_crc: f.headCrc };
  }

  private recordPosition(): void {
    if (this.current) this.options.sink.setCursor({ key: this.key, value: this.cursorOf(this.current) });
  }

  private idle(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollIntervalMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

function parseCursor(value: unknown): FileCursor | undefined {
  const c = value as Partial<FileCursor> | undefined;
  if (!c || typeof c.dev !== 'string' || typeof c.ino !== 'string' || !Number.isSafeInteger(c.offset) || !Number.isSafeInteger(c.head_len) || typeof c.head_crc !== 'number') return undefined;
  return c as FileCursor;
}

async function statOrUndefined(file: string): Promise<BigIntStats | undefined> {
  try {
    return await fs.stat(file, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readAt(handle: fs.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** Offset after the last LF at or before `size` (0 when there is none). */
async function lastLineEnd(handle: fs.FileHandle, size: number): Promise<number> {
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - 64 * 1024);
    const buf = await readAt(handle, start, end - start);
    const nl = buf.lastIndexOf(0x0a);
    if (nl >= 0) return start + nl + 1;
    end = start;
  }
  return 0;
}

/** A file beside `file` whose name starts with its name (`syslog.1`) and that is the file of `saved`. */
async function findByIdentity(file: string, saved: FileCursor): Promise<{ name: string; st: BigIntStats } | undefined> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (entry === base || !entry.startsWith(base)) continue;
    const name = path.join(dir, entry);
    const st = await statOrUndefined(name);
    if (st && String(st.dev) === saved.dev && String(st.ino) === saved.ino) return { name, st };
  }
  return undefined;
}
