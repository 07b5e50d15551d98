// The reference sensor's memory of events not yet stored by the cloud: a queue of events not yet sent,
// and the numbered batches sent but not yet acknowledged (protocol.md §5). It is bounded in events and
// bytes; when full it drops the oldest and counts what it dropped, for DATA_DROPPED. An event dropped from
// a batch already on the wire may have been stored all the same (its ack lost with the connection): it is
// counted only once the cloud has said it did not store that batch (the next welcome's ack_seq), and not
// at all when an ack or a welcome covers the batch.
import type { SensorEvent } from '../protocol/messages.js';

export interface EventBufferOptions {
  /** Most events held (queued + unacknowledged). */
  maxEvents: number;
  /** Most bytes held, counting each event as its JSON size. */
  maxBytes: number;
  /** Clock for drop times, Unix ms. */
  now?: () => number;
}

export interface BufferedEvent {
  /** Position in the order of push(), from 1. */
  readonly index: number;
  readonly event: SensorEvent;
  readonly bytes: number;
}

/** A batch sent (or about to be sent) under a sequence number it keeps until acknowledged. */
export interface Batch {
  readonly seq: number;
  /** Events of the batch; the first `start` of them were dropped by an overflow. */
  readonly entries: BufferedEvent[];
  start: number;
  /**
   * The batch went out with these events since the last welcome (created and sent, or resent), so the
   * cloud may store them: an event dropped from it now counts only if the cloud turns out not to have.
   */
  onWire: boolean;
}

export interface DropReport {
  droppedEvents: number;
  droppedBytes: number;
  /** When the first of these drops happened, Unix ms. */
  sinceMs: number;
}

export type Frame = string | Buffer;

/** Bytes of a frame as it goes on the wire. */
export function frameBytes(frame: Frame): number {
  return typeof frame === 'string' ? Buffer.byteLength(frame, 'utf8') : frame.length;
}

export function batchEvents(batch: Batch): SensorEvent[] {
  const out: SensorEvent[] = new Array(batch.entries.length - batch.start);
  for (let i = batch.start; i < batch.entries.length; i++) out[i - batch.start] = batch.entries[i]!.event;
  return out;
}

export class EventBuffer {
  readonly maxEvents: number;
  readonly maxBytes: number;
  private readonly now: () => number;
  /** Not yet in a batch; `head` is the first live element (a cheap queue). */
  private pending: BufferedEvent[] = [];
  private head = 0;
  private readonly unacked: Batch[] = [];
  private lastSeq = 0;
  private lastIndex = 0;
  private events = 0;
  private byteCount = 0;
  private drops: DropReport | null = null;
  /** Drops from batches on the wire, by batch seq: real only if the cloud did not store that batch. */
  private readonly uncertain = new Map<number, DropReport>();

  constructor(options: EventBufferOptions) {
    if (!(options.maxEvents >= 1) || !(options.maxBytes >= 1)) throw new Error('event buffer limits must be at least 1');
    this.maxEvents = options.maxEvents;
    this.maxBytes = options.maxBytes;
    this.now = options.now ?? Date.now;
  }

  /** Events held (queued and unacknowledged). */
  get size(): number {
    return this.events;
  }

  get bytes(): number {
    return this.byteCount;
  }

  get pendingCount(): number {
    return this.pending.length - this.head;
  }

  get unackedBatches(): readonly Batch[] {
    return this.unacked;
  }

  /** Highest sequence number given to a batch so far. */
  get highestSeq(): number {
    return this.lastSeq;
  }

  /**
   * Queues an event and returns its index. When the buffer is over a limit it drops the oldest events
   * not sent yet. Batches already sent (at most the in-flight window, possibly stored by now, and the
   * events from the moment the connection was lost) lose their oldest events only when nothing older than
   * the new event is queued.
   */
  push(event: SensorEvent, options: { overLimit?: boolean } = {}): number {
    const entry: BufferedEvent = { index: ++this.lastIndex, event, bytes: Buffer.byteLength(JSON.stringify(event), 'utf8') };
    this.pending.push(entry);
    this.events++;
    this.byteCount += entry.bytes;
    // overLimit: the report of a loss (DATA_DROPPED) must not itself cause the next loss.
    if (options.overLimit) return entry.index;
    while (this.events > this.maxEvents || this.byteCount > this.maxBytes) this.dropOldest(entry);
    return entry.index;
  }

  /**
   * Takes queued events into a new numbered batch: at most `maxEvents` events in a frame of at most
   * `maxFrameBytes` as produced by `encode`. An event too large for a frame on its own is dropped and
   * counted. Returns undefined when nothing is queued.
   */
  nextBatch(maxEvents: number, maxFrameBytes: number, encode: (seq: number, events: SensorEvent[]) => Frame): { batch: Batch; frame: Frame } | undefined {
    const seq = this.lastSeq + 1;
    for (;;) {
      const available = this.pending.length - this.head;
      if (available === 0) return undefined;
      // First guess from the JSON sizes (exact for JSON frames, close for msgpack), then check the real frame.
      const budget = maxFrameBytes - 64;
      let n = 0;
      let estimate = 0;
      while (n < available && n < maxEvents) {
        const b = this.pending[this.head + n]!.bytes + 1;
        if (n > 0 && estimate + b > budget) break;
        estimate += b;
        n++;
      }
      for (;;) {
        const entries = this.pending.slice(this.head, this.head + n);
        const frame = encode(seq, entries.map((e) => e.event));
        if (frameBytes(frame) <= maxFrameBytes) {
          this.head += n;
          this.compact();
          // The caller sends the frame now: the batch is on the wire from here.
          const batch: Batch = { seq, entries, start: 0, onWire: true };
          this.lastSeq = seq;
          this.unacked.push(batch);
          return { batch, frame };
        }
        if (n === 1) {
          this.dropPending();
          break;
        }
        n = Math.ceil(n / 2);
      }
    }
  }

  /**
   * Cumulative acknowledgement: releases every batch with seq <= `seq`. Returns the events released.
   * Events dropped from those batches while they were on the wire were stored: they are not counted.
   */
  ack(seq: number): number {
    for (const s of this.uncertain.keys()) if (s <= seq) this.uncertain.delete(s);
    let released = 0;
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= seq) {
      const batch = this.unacked.shift()!;
      for (let i = batch.start; i < batch.entries.length; i++) {
        this.byteCount -= batch.entries[i]!.bytes;
        released++;
      }
      this.events -= batch.entries.length - batch.start;
    }
    return released;
  }

  /**
   * A welcome: the cloud has stored the batches up to `ackSeq` and nothing after them (a new session is
   * welcomed only once the previous one's commits are settled). Events dropped from later batches while
   * they were on the wire are lost now; those of covered batches were stored. The batches still held are
   * off the wire until resent (sent()). Returns the events released.
   */
  welcomed(ackSeq: number): number {
    for (const [seq, dropped] of this.uncertain) if (seq > ackSeq) this.addDrops(dropped);
    this.uncertain.clear();
    const released = this.ack(ackSeq);
    for (const b of this.unacked) b.onWire = false;
    return released;
  }

  /** The unacknowledged batch `seq` was resent with the events it holds now. */
  sent(seq: number): void {
    const batch = this.unacked.find((b) => b.seq === seq);
    if (batch) batch.onWire = true;
  }

  /** Events dropped from batches on the wire whose fate the cloud has not told yet (not in any report). */
  get uncertainDrops(): number {
    let n = 0;
    for (const d of this.uncertain.values()) n += d.droppedEvents;
    return n;
  }

  /** Gives up an unacknowledged batch (it can never be delivered), counting its events as dropped. */
  discard(seq: number): void {
    const i = this.unacked.findIndex((b) => b.seq === seq);
    if (i < 0) return;
    const batch = this.unacked[i]!;
    this.unacked.splice(i, 1);
    for (let j = batch.start; j < batch.entries.length; j++) this.countDrop(batch.entries[j]!);
  }

  /** True when the event pushed as `index` has left the buffer (acknowledged or dropped). */
  isReleased(index: number): boolean {
    const first = this.unacked[0];
    if (first) return index < first.entries[first.start]!.index;
    const next = this.pending[this.head];
    return next === undefined || index < next.index;
  }

  /** What was dropped since the last report, and resets the count; undefined when nothing was. */
  takeDropReport(): DropReport | undefined {
    const report = this.drops ?? undefined;
    this.drops = null;
    return report;
  }

  /** Drops not taken yet (read-only). */
  get droppedSinceReport(): Readonly<DropReport> | undefined {
    return this.drops ?? undefined;
  }

  /** Drops the oldest queued event other than `incoming`, else the oldest sent one, else `incoming` itself. */
  private dropOldest(incoming: BufferedEvent): void {
    const batch = this.unacked[0];
    const onlyIncoming = this.pending.length - this.head === 1 && this.pending[this.head] === incoming;
    if (!batch || (this.head < this.pending.length && !onlyIncoming)) {
      this.dropPending();
      return;
    }
    const entry = batch.entries[batch.start]!;
    if (batch.onWire) this.countUncertainDrop(batch.seq, entry);
    else this.countDrop(entry);
    batch.start++;
    // An emptied batch is forgotten: its sequence number becomes a gap, which the protocol allows.
    if (batch.start === batch.entries.length) this.unacked.shift();
  }

  private dropPending(): void {
    const entry = this.pending[this.head]!;
    this.head++;
    this.countDrop(entry);
    this.compact();
  }

  private countDrop(entry: BufferedEvent): void {
    this.events--;
    this.byteCount -= entry.bytes;
    this.addDrops({ droppedEvents: 1, droppedBytes: entry.bytes, sinceMs: this.now() });
  }

  private countUncertainDrop(seq: number, entry: BufferedEvent): void {
    this.events--;
    this.byteCount -= entry.bytes;
    const d = this.uncertain.get(seq);
    if (d) {
      d.droppedEvents++;
      d.droppedBytes += entry.bytes;
    } else {
      this.uncertain.set(seq, { droppedEvents: 1, droppedBytes: entry.bytes, sinceMs: this.now() });
    }
  }

  private addDrops(d: DropReport): void {
    if (this.drops) {
      this.drops.droppedEvents += d.droppedEvents;
      this.drops.droppedBytes += d.droppedBytes;
      this.drops.sinceMs = Math.min(this.drops.sinceMs, d.sinceMs);
    } else {
      this.drops = { ...d };
    }
  }

  private compact(): void {
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
  }
}
