// The last events committed to the log, kept in memory with their log positions, so that an output
// caught up with the log reads what was just committed without reading it back from SQLite (a query,
// and a new copy of every envelope decoded from the file). It holds contiguous positions only: a commit
// whose positions do not follow the last one held (an insert this store did not see, a commit it could
// not number) starts it over. Bounded by envelope bytes and by age; an output further behind reads the
// file as before.
import type { LogQuery, LogRow, StoredEvent } from '../store.js';

/** Positions of a group's events: consecutive, `first` to `first + count - 1`. */
interface Chunk {
  first: number;
  events: ReadonlyArray<StoredEvent>;
  bytes: number;
  /** performance.now() when it was committed. */
  at: number;
}

export interface RecentLogLimits {
  /** Most envelope characters held (UTF-16 code units: a bound on memory, not on disk). */
  maxChars: number;
  /** Groups older than this (ms) are dropped at the next commit. */
  maxAgeMs: number;
  /** Nothing is kept while nothing has read for this long (ms): a node without outputs holds no tail. */
  idleMs: number;
}

/**
 * Wide enough for an output that falls behind for a moment to stay on it: an output outside it reads the
 * file (a query on the main thread, and a new copy of every envelope), which at 40,000 events/s costs the
 * event loop so much that the output fell further behind and never came back (seconds behind for the rest
 * of a run). 2 s, or 32 Mi characters (2.5 s at 40,000 events/s of 340-byte envelopes, 1.2 s at 80,000),
 * whichever is less. 500 ms and 4 Mi characters (about 300 ms at 40,000 events/s) were too narrow:
 * docs/performance.md, "an output that stays on the memory tail".
 */
export const RECENT_LOG_LIMITS: RecentLogLimits = { maxChars: 32 * 1024 * 1024, maxAgeMs: 2000, idleMs: 10_000 };

/** Whether a stored event belongs to an output stream ("event" is telemetry, stored without a stream). */
function inStream(e: StoredEvent, stream: LogQuery['stream']): boolean {
  const s = e.stream ?? 'event';
  return s === stream;
}

export class RecentLog {
  private chunks: Chunk[] = [];
  private head = 0;
  private chars = 0;
  /** Drops what has aged out when no commit comes to do it (a quiet node keeps nothing for long). */
  private sweep: NodeJS.Timeout | null = null;
  /** performance.now() of the last read (the log's creation until the first). */
  private lastReadAt = performance.now();

  constructor(private readonly limits: RecentLogLimits = RECENT_LOG_LIMITS) {}

  /** First position held (0 when empty). */
  get low(): number {
    return this.chunks[this.head]?.first ?? 0;
  }

  /** Last position held (0 when empty). */
  get high(): number {
    const last = this.chunks[this.chunks.length - 1];
    return last ? last.first + last.events.length - 1 : 0;
  }

  /** A group just committed at positions first … first + events.length - 1. */
  add(first: number, events: ReadonlyArray<StoredEvent>, now = performance.now()): void {
    if (events.length === 0) return;
    if (now - this.lastReadAt > this.limits.idleMs) {
      // Nobody reads the tail (no output on this node, or all paused): keep nothing. The first read
      // finds nothing held and goes to the file; the groups after it are kept again.
      if (this.head < this.chunks.length) this.clear();
      return;
    }
    if (this.head < this.chunks.length && first !== this.high + 1) this.clear();
    let bytes = 0;
    for (const e of events) bytes += e.json.length;
    this.chunks.push({ first, events, bytes, at: now });
    this.chars += bytes;
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

  /** Something was inserted that this log did not see: nothing held may be taken as complete any more. */
  clear(): void {
    if (this.sweep) clearTimeout(this.sweep);
    this.sweep = null;
    this.chunks = [];
    this.head = 0;
    this.chars = 0;
  }

  /**
   * The query's rows among those held, when everything after `afterSeq` up to `high` is held; null when
   * positions after `afterSeq` are no longer (or not yet) held. Rows after `high` may exist in the file
   * (a commit not yet reported): the caller reads those from there.
   */
  read(q: LogQuery, now = performance.now()): LogRow[] | null {
    this.lastReadAt = now;
    if (this.head >= this.chunks.length || q.afterSeq + 1 < this.low || q.afterSeq > this.high) return null;
    const rows: LogRow[] = [];
    for (let c = this.findChunk(q.afterSeq + 1); c < this.chunks.length && rows.length < q.limit; c++) {
      const chunk = this.chunks[c]!;
      for (let i = Math.max(0, q.afterSeq + 1 - chunk.first); i < chunk.events.length; i++) {
        const e = chunk.events[i]!;
        if (e.oid !== q.oid || !inStream(e, q.stream)) continue;
        rows.push({ seq: chunk.first + i, oid: e.oid, sid: e.sid, event_type: e.event_type, json: e.json });
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
      if (c.first + c.events.length - 1 < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** `keepNewest`: at a commit the newest group stays, even when it alone exceeds the size bound. */
  private evict(now: number, keepNewest = true): void {
    while (this.chunks.length - this.head > (keepNewest ? 1 : 0)) {
      const oldest = this.chunks[this.head]!;
      if (this.chars <= this.limits.maxChars && now - oldest.at <= this.limits.maxAgeMs) break;
      this.chars -= oldest.bytes;
      this.chunks[this.head] = undefined as unknown as Chunk;
      this.head++;
    }
    if (this.head === this.chunks.length) return this.clear();
    // Compact once the dropped slots are the larger part.
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
