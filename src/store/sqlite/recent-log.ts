// The last events committed to the log, kept in memory with their log positions, so that an output
// caught up with the log reads what was just committed without reading it back from SQLite (a query,
// and a new copy of every envelope decoded from the file). It holds contiguous positions only: a commit
// whose positions do not follow the last one held (an insert this store did not see, a commit it could
// not number) starts it over. Bounded by bytes and by age; an output further behind reads the file as
// before.
//
// Groups are held packed, as the append thread read them (event-append.ts: numbers per event, and the
// UTF-8 of each event id and envelope back to back), copied into one ring of memory outside the
// JavaScript heap, allocated once. Held for seconds as strings and objects, every envelope outlived two
// young-generation collections and was promoted to the old generation: 25 MB/s at 35,000 events/s, a
// full collection every 8 s, each holding up every event under way for 150-250 ms. A buffer of its own
// per group was no better: that much memory allocated outside the heap makes V8 collect fully several
// times a second (docs/performance.md, "a tail outside the heap"). A read makes each row's envelope a
// string again, garbage once the output has sent it.
import { EVENT_FIELDS, isPacked, packEvents, type PackedEvents } from './event-append.js';
import type { LogQuery, LogRow, StoredEvent } from '../store.js';

/** Positions of a group's events: consecutive, `first` to `first + count - 1`. */
interface Chunk {
  first: number;
  count: number;
  /** The group's distinct oid, sid, event_type and stream values, indexed from `fields`. */
  strings: ReadonlyArray<string>;
  /** EVENT_FIELDS numbers per event (PackedEvents): a view of the ring. */
  fields: Float64Array;
  /** The UTF-8 of every event id and envelope, back to back: a view of the ring. */
  bytes: Buffer;
  /** Where it starts in the ring, counted from the ring's first byte ever written (never wraps). */
  start: number;
  /** performance.now() when it was committed. */
  at: number;
}

export interface RecentLogLimits {
  /** Size of the ring the groups are held in, bytes: their ids and envelopes as UTF-8, and 56 bytes of numbers per event. */
  maxBytes: number;
  /** Groups older than this (ms) are dropped at the next commit. */
  maxAgeMs: number;
  /**
   * Nothing is kept while nothing has read at or inside the tail for this long (ms): a node without
   * outputs, or whose outputs are all paused or far behind (reading the file), copies nothing.
   */
  idleMs: number;
}

/**
 * Wide enough for an output that falls behind for a moment to stay on it: an output outside it reads the
 * file (a query on the main thread, and a new copy of every envelope), which at 40,000 events/s costs the
 * event loop so much that the output fell further behind and never came back (seconds behind for the rest
 * of a run). 2 s, or 32 MiB (2 s at 40,000 events/s of 340-byte envelopes, 1.1 s at 70,000), whichever
 * is less. 500 ms and 4 Mi characters (about 300 ms at 40,000 events/s) were too narrow:
 * docs/performance.md, "an output that stays on the memory tail".
 */
export const RECENT_LOG_LIMITS: RecentLogLimits = { maxBytes: 32 * 1024 * 1024, maxAgeMs: 2000, idleMs: 10_000 };

/** Positions from the log's end within which a read, while nothing is held, starts the keeping again (a full group). */
const NEAR_END_POSITIONS = 20_000;

export class RecentLog {
  private chunks: Chunk[] = [];
  private head = 0;
  /** The memory groups are copied into (maxBytes), allocated at the first group kept, let go when nothing reads. */
  private ring: Buffer | null = null;
  /** Where the next group goes, counted like Chunk.start: its place in the ring is this modulo maxBytes. */
  private ringEnd = 0;
  /** Drops what has aged out when no commit comes to do it (a quiet node keeps nothing for long). */
  private sweep: NodeJS.Timeout | null = null;
  /** Last position of the last group committed, held or not. */
  private end = 0;
  /** performance.now() of the last read at or inside the tail, not behind it (the log's creation until the first). */
  private lastReadAt = performance.now();

  constructor(private readonly limits: RecentLogLimits = RECENT_LOG_LIMITS) {}

  /** First position held (0 when empty). */
  get low(): number {
    return this.chunks[this.head]?.first ?? 0;
  }

  /** Last position held (0 when empty). */
  get high(): number {
    const last = this.chunks[this.chunks.length - 1];
    return last ? last.first + last.count - 1 : 0;
  }

  /**
   * A group just committed at positions first … first + count - 1: its events, or the group as packed
   * for the append thread (copied here: its buffers are reused for the next group).
   */
  add(first: number, group: ReadonlyArray<StoredEvent> | PackedEvents, now = performance.now()): void {
    const count = isPacked(group) ? group.count : group.length;
    if (count === 0) return;
    this.end = first + count - 1;
    if (now - this.lastReadAt > this.limits.idleMs) {
      // Nobody reads the tail (no output on this node, all paused, or all reading the file far behind it):
      // keep nothing. The first read at the log's end finds nothing held and goes to the file; the groups
      // after it are kept again.
      if (this.ring) this.clear(true);
      return;
    }
    if (this.head < this.chunks.length && first !== this.high + 1) this.clear();
    const packed = isPacked(group) ? group : packOwn(group);
    const fieldBytes = count * EVENT_FIELDS * Float64Array.BYTES_PER_ELEMENT;
    // Every group starts 8-byte aligned, where its numbers can be viewed in place.
    const size = fieldBytes + ((packed.bytes.length + 7) & ~7);
    const capacity = this.limits.maxBytes;
    if (size > capacity) {
      // Larger than the whole ring: not held, and what was held no longer joins the next group.
      this.clear();
      return;
    }
    const ring = (this.ring ??= Buffer.allocUnsafeSlow(capacity));
    let start = this.ringEnd;
    // A group is never split at the ring's end: it goes to the start, and the space left is skipped.
    const offset = start % capacity;
    if (offset + size > capacity) start += capacity - offset;
    const end = start + size;
    // What this group is written over: every group that began a whole ring before its end.
    while (this.head < this.chunks.length && this.chunks[this.head]!.start < end - capacity) this.dropOldest();
    const at = start % capacity;
    const fields = new Float64Array(ring.buffer, ring.byteOffset + at, count * EVENT_FIELDS);
    fields.set(packed.fields.subarray(0, count * EVENT_FIELDS));
    const bytes = ring.subarray(at + fieldBytes, at + fieldBytes + packed.bytes.length);
    bytes.set(packed.bytes);
    this.ringEnd = end;
    this.chunks.push({ first, count, strings: packed.strings, fields, bytes, start, at: now });
    this.evict(now);
    this.scheduleSweep();
  }

  private scheduleSweep(): void {
    if (this.sweep || this.head >= this.chunks.length) return;
    this.sweep = setTimeout(() => {
      this.sweep = null;
      this.evict(performance.now(), false);
      this.scheduleSweep();
    }, this.limits.maxAgeMs + 1);
    this.sweep.unref();
  }

  /**
   * Something was inserted that this log did not see: nothing held may be taken as complete any more.
   * `release`: the ring's memory is let go too (nothing reads the tail).
   */
  clear(release = false): void {
    if (this.sweep) clearTimeout(this.sweep);
    this.sweep = null;
    this.chunks = [];
    this.head = 0;
    if (release) this.ring = null;
  }

  /**
   * The query's rows among those held, when everything after `afterSeq` up to `high` is held; null when
   * positions after `afterSeq` are no longer (or not yet) held. Rows after `high` may exist in the file
   * (a commit not yet reported): the caller reads those from there.
   */
  read(q: LogQuery, now = performance.now()): LogRow[] | null {
    // With nothing held, a reader counts as at the end within a full group of it: under steady commits a
    // caught-up output reads while the next group is already reported, and must still start the keeping.
    const behind = this.head < this.chunks.length ? q.afterSeq + 1 < this.low : this.end - q.afterSeq > NEAR_END_POSITIONS;
    if (!behind) this.lastReadAt = now;
    if (this.head >= this.chunks.length || q.afterSeq + 1 < this.low || q.afterSeq > this.high) return null;
    const rows: LogRow[] = [];
    for (let c = this.findChunk(q.afterSeq + 1); c < this.chunks.length && rows.length < q.limit; c++) {
      const { first, count, strings, fields: f, bytes } = this.chunks[c]!;
      // Compared as indexes into the group's strings; telemetry is packed without a stream (-1) or as "event".
      const oid = strings.indexOf(q.oid);
      if (oid < 0) continue;
      const stream = strings.indexOf(q.stream);
      const telemetry = q.stream === 'event';
      if (stream < 0 && !telemetry) continue;
      for (let k = Math.max(0, q.afterSeq + 1 - first), i = k * EVENT_FIELDS; k < count; k++, i += EVENT_FIELDS) {
        const s = f[i + 6]!;
        if (f[i] !== oid || !(s < 0 ? telemetry : s === stream)) continue;
        const sid = f[i + 1]!;
        const json = bytes.toString('utf8', f[i + 4]!, f[i + 5]!);
        rows.push({ seq: first + k, oid: q.oid, sid: sid < 0 ? null : strings[sid]!, event_type: strings[f[i + 2]!]!, json });
        if (rows.length >= q.limit) break;
      }
    }
    return rows;
  }

  /** Index of the chunk holding position `seq` (the first chunk after it if none does). */
  private findChunk(seq: number): number {
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = this.chunks[mid]!;
      if (c.first + c.count - 1 < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops the groups older than maxAgeMs; `keepNewest`: at a commit the newest group stays whatever its age. */
  private evict(now: number, keepNewest = true): void {
    while (this.chunks.length - this.head > (keepNewest ? 1 : 0) && now - this.chunks[this.head]!.at > this.limits.maxAgeMs) this.dropOldest();
    if (this.head === this.chunks.length) this.clear();
  }

  private dropOldest(): void {
    this.chunks[this.head] = undefined as unknown as Chunk;
    this.head++;
    // Compact once the dropped slots are the larger part.
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

/** Packs a group committed on the store's own connection (no append thread), as the thread would read it. */
function packOwn(events: ReadonlyArray<StoredEvent>): PackedEvents {
  let chars = 0;
  for (const e of events) chars += e.event_id.length + e.json.length;
  const buffers = { bytes: Buffer.allocUnsafeSlow(chars + 64), fields: new Float64Array(events.length * EVENT_FIELDS) };
  const packed = packEvents(events, buffers, new Map(), (size) => Buffer.allocUnsafeSlow(size));
  return { count: packed.count, strings: packed.strings, fields: buffers.fields, bytes: buffers.bytes.subarray(0, packed.bytes) };
}
