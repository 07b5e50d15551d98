// The adapter's durable memory of what it has read but the cloud has not acknowledged: every message gets
// its sequence number x here, is appended to the journal before it may be sent, and stays until a
// cumulative ack releases it. A restart on the same state directory keeps the instance_id and resends
// the unacknowledged messages with their original x, which the cloud stores once (docs/usp.md §4).
//
// Bounded in bytes: when full, the oldest messages are dropped (logged and counted); sources that can
// wait (files, stdin) stop reading at half of the bound instead (waitForRoom), so only syslog over UDP
// can overflow it.
//
// Durability: records reach the kernel (a write) before their message is offered for sending, so a
// killed process loses nothing it has sent; fdatasync runs every `fsyncIntervalMs`. Sequence numbers are
// reserved in blocks in the fsynced checkpoint, so even a journal tail lost to a power cut never makes a
// sequence number be reused for another line.
import { randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, renameSync, truncateSync, writeSync } from 'node:fs';
import type { Logger } from '../observability/logger.js';
import { encodeRecord, readJournal, type JournalRecord } from './journal.js';
import type { MessageFields, SourceCursor } from './message.js';
import type { MessageSink } from './sources/source.js';
import { lockStateDir, readCheckpoint, statePaths, syncDirectory, writeCheckpoint, type Checkpoint, type StatePaths } from './state-dir.js';

export interface DiskBufferOptions {
  stateDir: string;
  /** Most bytes of unacknowledged messages held (their journal record sizes). */
  maxBytes: number;
  /** fdatasync the journal this often, ms; 0 = after every write. */
  fsyncIntervalMs: number;
  logger: Logger;
  /** Rewrite the journal once it is this large and at most half of it is still needed. */
  compactBytes?: number;
  /** With nothing left to deliver, empty a journal larger than this. */
  idleCompactBytes?: number;
  /** Sequence numbers reserved per checkpoint write. */
  reserveBlock?: number;
  /** Who the messages are for; a state directory reused for another sensor is reported. */
  owner?: { oid: string; sensor_seed_key: string };
}

export interface BufferedMessage {
  readonly x: number;
  readonly fields: MessageFields;
  /** Size of its journal record. */
  readonly bytes: number;
}

export interface DiskBufferStats {
  /** Messages buffered by this process. */
  appended: number;
  /** Messages released by acknowledgements. */
  acknowledged: number;
  /** Messages dropped because the buffer was full. */
  dropped: number;
  droppedBytes: number;
  /** Messages the cloud refused (discard); never delivered. */
  rejected: number;
  /** Unacknowledged messages found on disk at open. */
  recovered: number;
}

const DEFAULT_COMPACT_BYTES = 16 * 1024 * 1024;
const DEFAULT_IDLE_COMPACT_BYTES = 64 * 1024;
const DEFAULT_RESERVE_BLOCK = 10_000;
const DROP_LOG_INTERVAL_MS = 5000;

export class DiskBuffer implements MessageSink {
  readonly instanceId: string;
  readonly maxBytes: number;
  readonly stats: DiskBufferStats = { appended: 0, acknowledged: 0, dropped: 0, droppedBytes: 0, rejected: 0, recovered: 0 };
  private readonly paths: StatePaths;
  private readonly log: Logger;
  private readonly compactBytes: number;
  private readonly idleCompactBytes: number;
  private readonly reserveBlock: number;
  private readonly owner: DiskBufferOptions['owner'];
  private readonly unlock: () => void;
  /** Unreleased messages in x order; `head` is the first (a cheap queue). */
  private live: BufferedMessage[];
  private head = 0;
  private liveBytes: number;
  private lastX: number;
  private releasedX: number;
  private reservedX: number;
  /** Highest x whose record has been written to the journal: only those may be sent. */
  private writtenX: number;
  private readonly cursors: Map<string, unknown>;
  private pendingRecords: Buffer[] = [];
  private pendingRelease = 0;
  private fd: number;
  private journalBytes: number;
  private flushQueued = false;
  private unsynced = false;
  private readonly fsyncTimer: NodeJS.Timeout | null;
  private readonly fsyncEveryWrite: boolean;
  private readonly availableListeners = new Set<() => void>();
  private roomWaiters: Array<() => void> = [];
  private emptyWaiters: Array<() => void> = [];
  private dropsSinceLog = 0;
  private lastDropLogAt = 0;
  private closed = false;

  private constructor(options: DiskBufferOptions) {
    if (!(options.maxBytes >= 1)) throw new Error('the disk buffer needs maxBytes >= 1');
    this.maxBytes = options.maxBytes;
    this.log = options.logger;
    this.compactBytes = options.compactBytes ?? DEFAULT_COMPACT_BYTES;
    this.idleCompactBytes = options.idleCompactBytes ?? DEFAULT_IDLE_COMPACT_BYTES;
    this.reserveBlock = options.reserveBlock ?? DEFAULT_RESERVE_BLOCK;
    this.owner = options.owner;
    this.paths = statePaths(options.stateDir);
    this.unlock = lockStateDir(this.paths);
    try {
      const checkpoint = readCheckpoint(this.paths);
      const journal = readJournal(this.paths.journal);
      if (journal.validBytes < journal.fileBytes) {
        this.log.warn({ journal: this.paths.journal, cut_bytes: journal.fileBytes - journal.validBytes }, 'journal ends with a torn or corrupt record (the adapter died while writing it); cut off');
        truncateSync(this.paths.journal, journal.validBytes);
      }
      this.instanceId = checkpoint?.instance_id ?? randomUUID();
      this.releasedX = checkpoint?.released_x ?? 0;
      this.lastX = checkpoint?.last_x ?? 0;
      this.reservedX = checkpoint?.reserved_x ?? 0;
      this.cursors = new Map(Object.entries(checkpoint?.cursors ?? {}));
      this.live = [];
      this.liveBytes = 0;
      this.replay(journal.records, journal.recordBytes);
      // Any x up to the reservation may have been sent before the journal lost its tail: never reuse one.
      this.lastX = Math.max(this.lastX, this.reservedX);
      this.writtenX = this.lastX;
      this.stats.recovered = this.size;
      if (checkpoint?.oid !== undefined && this.owner && (checkpoint.oid !== this.owner.oid || checkpoint.sensor_seed_key !== this.owner.sensor_seed_key)) {
        this.log.warn({ state_dir: this.paths.dir, was: { oid: checkpoint.oid, sensor_seed_key: checkpoint.sensor_seed_key }, now: this.owner }, 'state directory was used for another sensor; its buffered messages go to the new one');
      }
      this.fd = openSync(this.paths.journal, 'a', 0o600);
      this.journalBytes = journal.validBytes;
      if (!checkpoint || this.owner?.oid !== checkpoint.oid || this.owner?.sensor_seed_key !== checkpoint.sensor_seed_key) this.saveCheckpoint();
    } catch (err) {
      this.unlock();
      throw err;
    }
    this.fsyncEveryWrite = options.fsyncIntervalMs <= 0;
    this.fsyncTimer = this.fsyncEveryWrite ? null : setInterval(() => this.sync(), options.fsyncIntervalMs);
    this.fsyncTimer?.unref();
  }

  /** Opens (or creates) the buffer of a state directory and takes its lock until close(). */
  static open(options: DiskBufferOptions): DiskBuffer {
    return new DiskBuffer(options);
  }

  get stateDir(): string {
    return this.paths.dir;
  }

  /** Unreleased messages held. */
  get size(): number {
    return this.live.length - this.head;
  }

  get bytes(): number {
    return this.liveBytes;
  }

  /** Highest x acknowledged or dropped. */
  get releasedThrough(): number {
    return this.releasedX;
  }

  /** The oldest unreleased message's x. */
  get firstX(): number | undefined {
    return this.live[this.head]?.x;
  }

  /** Buffers a message: gives it the next x and queues its journal record (written on the next tick). */
  append(fields: MessageFields, cursor?: SourceCursor): number {
    this.assertOpen();
    const x = this.takeX();
    const record = encodeRecord(cursor ? { k: 'm', x, f: fields, c: [cursor.key, cursor.value] } : { k: 'm', x, f: fields });
    this.live.push({ x, fields, bytes: record.length });
    this.liveBytes += record.length;
    this.pendingRecords.push(record);
    if (cursor) this.cursors.set(cursor.key, cursor.value);
    this.stats.appended++;
    while (this.liveBytes > this.maxBytes && this.size > 1) this.dropOldest();
    this.scheduleFlush();
    return x;
  }

  /** Records a source position that no message carries. */
  setCursor(cursor: SourceCursor): void {
    this.assertOpen();
    this.cursors.set(cursor.key, cursor.value);
    this.pendingRecords.push(encodeRecord({ k: 'c', c: [cursor.key, cursor.value] }));
    this.scheduleFlush();
  }

  /** A source's last recorded position. */
  cursor(key: string): unknown {
    return this.cursors.get(key);
  }

  /**
   * Whether sources that can wait may read more: below half of maxBytes, so that the chunk a source has
   * already read (many lines at once) still fits without making the buffer drop anything.
   */
  hasRoom(): boolean {
    return this.liveBytes < this.maxBytes / 2;
  }

  /** Resolves once hasRoom() is true. */
  waitForRoom(): Promise<void> {
    if (this.hasRoom() || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Resolves once every buffered message is released. */
  whenEmpty(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  /** Called whenever newly written messages can be sent. Returns the unsubscribe function. */
  onAvailable(listener: () => void): () => void {
    this.availableListeners.add(listener);
    return () => this.availableListeners.delete(listener);
  }

  /** The first message written to the journal with an x above `x`. */
  nextAfter(x: number): BufferedMessage | undefined {
    const m = this.live[this.indexAfter(x)];
    return m !== undefined && m.x <= this.writtenX ? m : undefined;
  }

  /** How many unreleased messages have an x of at most `x` (those in flight when `x` was the last sent). */
  countThrough(x: number): number {
    return this.indexAfter(x) - this.head;
  }

  /** Cumulative acknowledgement: releases every message with x' <= x. Returns how many it released. */
  release(x: number): number {
    if (this.closed || x <= this.releasedX) return 0;
    const through = Math.min(x, this.lastX);
    const end = this.indexAfter(through);
    for (let i = this.head; i < end; i++) this.liveBytes -= this.live[i]!.bytes;
    const released = end - this.head;
    this.head = end;
    this.stats.acknowledged += released;
    this.markReleased(through);
    this.afterRemoval();
    if (this.size === 0 ? this.journalBytes > this.idleCompactBytes : this.journalBytes >= this.compactBytes && this.liveBytes * 2 <= this.journalBytes) this.compact();
    return released;
  }

  /** Gives up the oldest message, which the cloud refuses (it would be refused on every resend). */
  discardOldest(): BufferedMessage | undefined {
    const m = this.live[this.head];
    if (!m || this.closed) return undefined;
    this.head++;
    this.liveBytes -= m.bytes;
    this.stats.rejected++;
    this.markReleased(m.x);
    this.afterRemoval();
    return m;
  }

  /** Writes queued records to the journal now; then offers newly written messages for sending. */
  flush(): void {
    if (this.closed) return;
    if (this.pendingRelease > 0) {
      this.pendingRecords.push(encodeRecord({ k: 'r', x: this.pendingRelease }));
      this.pendingRelease = 0;
    }
    if (this.pendingRecords.length === 0) return;
    const data = this.pendingRecords.length === 1 ? this.pendingRecords[0]! : Buffer.concat(this.pendingRecords);
    this.pendingRecords = [];
    let written = 0;
    while (written < data.length) written += writeSync(this.fd, data, written, data.length - written);
    this.journalBytes += data.length;
    this.unsynced = true;
    if (this.fsyncEveryWrite) this.sync();
    if (this.writtenX < this.lastX) {
      this.writtenX = this.lastX;
      for (const listener of this.availableListeners) listener();
    }
  }

  /** Flushes, fsyncs, writes the checkpoint and compacts the journal, and releases the lock. */
  close(): void {
    if (this.closed) return;
    this.flush();
    if (this.fsyncTimer) clearInterval(this.fsyncTimer);
    this.compact();
    this.closed = true;
    closeSync(this.fd);
    this.unlock();
    this.reportDrops(true);
    for (const resolve of this.roomWaiters.splice(0)) resolve();
    this.availableListeners.clear();
  }

  // ---- internals ----

  private replay(records: JournalRecord[], sizes: number[]): void {
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.k === 'm') {
        if (r.x > this.lastX) this.lastX = r.x;
        if (r.c) this.cursors.set(r.c[0], r.c[1]);
        const last = this.live[this.live.length - 1];
        if (r.x > this.releasedX && (!last || r.x > last.x)) {
          this.live.push({ x: r.x, fields: r.f, bytes: sizes[i]! });
          this.liveBytes += sizes[i]!;
        }
      } else if (r.k === 'r') {
        if (r.x > this.releasedX) this.releasedX = r.x;
        while (this.head < this.live.length && this.live[this.head]!.x <= this.releasedX) this.liveBytes -= this.live[this.head++]!.bytes;
      } else {
        this.cursors.set(r.c[0], r.c[1]);
      }
    }
    this.live = this.live.slice(this.head);
    this.head = 0;
  }

  private takeX(): number {
    const x = this.lastX + 1;
    if (x > this.reservedX) {
      // The checkpoint carries source positions: the records that moved them must be on disk first.
      this.flush();
      this.sync();
      this.reservedX = x - 1 + this.reserveBlock;
      this.saveCheckpoint();
    }
    this.lastX = x;
    return x;
  }

  private dropOldest(): void {
    const m = this.live[this.head++]!;
    this.liveBytes -= m.bytes;
    this.stats.dropped++;
    this.stats.droppedBytes += m.bytes;
    this.markReleased(m.x);
    this.dropsSinceLog++;
    this.reportDrops(false);
  }

  private reportDrops(force: boolean): void {
    const now = Date.now();
    if (this.dropsSinceLog === 0 || (!force && now - this.lastDropLogAt < DROP_LOG_INTERVAL_MS)) return;
    this.log.error({ dropped: this.dropsSinceLog, dropped_total: this.stats.dropped, dropped_bytes_total: this.stats.droppedBytes, max_buffer_bytes: this.maxBytes }, 'buffer full: oldest unacknowledged messages dropped, they will never be delivered');
    this.dropsSinceLog = 0;
    this.lastDropLogAt = now;
  }

  private markReleased(x: number): void {
    if (x <= this.releasedX) return;
    this.releasedX = x;
    this.pendingRelease = x;
    this.scheduleFlush();
  }

  private afterRemoval(): void {
    if (this.head > 1024 && this.head * 2 > this.live.length) {
      this.live = this.live.slice(this.head);
      this.head = 0;
    }
    if (this.roomWaiters.length > 0 && this.hasRoom()) for (const resolve of this.roomWaiters.splice(0)) resolve();
    if (this.emptyWaiters.length > 0 && this.size === 0) for (const resolve of this.emptyWaiters.splice(0)) resolve();
  }

  /** Index in `live` of the first message with x' > x (binary search; x only grows along `live`). */
  private indexAfter(x: number): number {
    let lo = this.head;
    let hi = this.live.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.live[mid]!.x <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private scheduleFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private sync(): void {
    if (!this.unsynced || this.closed) return;
    this.unsynced = false;
    fdatasyncSync(this.fd);
  }

  private saveCheckpoint(): void {
    const checkpoint: Checkpoint = {
      version: 1,
      instance_id: this.instanceId,
      released_x: this.releasedX,
      last_x: this.lastX,
      reserved_x: this.reservedX,
      cursors: Object.fromEntries(this.cursors),
      ...(this.owner ?? {}),
    };
    writeCheckpoint(this.paths, checkpoint);
  }

  /**
   * Checkpoint first (it then holds every source position and the released watermark), then a journal
   * of the unreleased messages only, without positions (older than the checkpoint's). A crash between the
   * two steps leaves the old journal, whose replay over the new checkpoint gives the same state.
   */
  private compact(): void {
    this.flush();
    this.sync();
    this.saveCheckpoint();
    if (this.size === 0) {
      ftruncateSync(this.fd, 0);
      this.journalBytes = 0;
      return;
    }
    const parts: Buffer[] = [];
    for (let i = this.head; i < this.live.length; i++) parts.push(encodeRecord({ k: 'm', x: this.live[i]!.x, f: this.live[i]!.fields }));
    const data = Buffer.concat(parts);
    const next = openSync(this.paths.journalNext, 'w', 0o600);
    try {
      let written = 0;
      while (written < data.length) written += writeSync(next, data, written, data.length - written);
      fsyncSync(next);
    } finally {
      closeSync(next);
    }
    renameSync(this.paths.journalNext, this.paths.journal);
    syncDirectory(this.paths.dir);
    closeSync(this.fd);
    this.fd = openSync(this.paths.journal, 'a', 0o600);
    this.journalBytes = data.length;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the disk buffer is closed');
  }
}
