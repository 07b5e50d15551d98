// The in-memory tail of the event log that outputs keeping up read from: it answers only for positions
// it holds without a gap, filtered like the file's query, and forgets by size and age.
import { describe, expect, it } from 'vitest';
import { RECENT_LOG_LIMITS, RecentLog } from '../src/store/sqlite/recent-log.js';
import { EVENT_FIELDS, packEvents } from '../src/store/sqlite/event-append.js';
import type { StoredEvent } from '../src/store/store.js';
import { waitFor } from './harness/wait.js';

const ev = (id: string, oid = 'o', stream: string | null = null): StoredEvent => ({ oid, sid: 's', event_type: 'T', event_time: 1, event_id: id, json: `{"id":"${id}"}`, stream });
const ids = (rows: ReadonlyArray<{ json: string }> | null): string[] | null => rows && rows.map((r) => (JSON.parse(r.json) as { id: string }).id);

describe('RecentLog', () => {
  it('reads the rows after a position across groups, of one organization and stream, up to the limit', () => {
    const log = new RecentLog();
    log.add(10, [ev('a'), ev('b', 'other'), ev('c', 'o', 'audit')]);
    log.add(13, [ev('d', 'o', 'event'), ev('e')]);
    expect(log.low).toBe(10);
    expect(log.high).toBe(14);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 9, limit: 10 })?.map((r) => r.seq)).toEqual([10, 13, 14]);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 10, limit: 10 }))).toEqual(['d', 'e']);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 9, limit: 2 }))).toEqual(['a', 'd']);
    expect(ids(log.read({ oid: 'o', stream: 'audit', afterSeq: 9, limit: 10 }))).toEqual(['c']);
    expect(ids(log.read({ oid: 'other', stream: 'event', afterSeq: 11, limit: 10 }))).toEqual([]);
    // Caught up: nothing held after the last position, but the answer is complete as far as it goes.
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 14, limit: 10 })).toEqual([]);
  });

  it('does not answer for positions it does not hold: before its first, or beyond its last', () => {
    const log = new RecentLog();
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 0, limit: 10 })).toBeNull();
    log.add(5, [ev('a'), ev('b')]);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 3, limit: 10 })).toBeNull();
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 4, limit: 10 }))).toEqual(['a', 'b']);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 7, limit: 10 })).toBeNull();
  });

  it('starts over at a group that does not follow the last one (positions it never saw lie between)', () => {
    const log = new RecentLog();
    log.add(1, [ev('a'), ev('b')]);
    log.add(5, [ev('c')]);
    expect(log.low).toBe(5);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 2, limit: 10 })).toBeNull();
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 4, limit: 10 }))).toEqual(['c']);
    log.clear();
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 5, limit: 10 })).toBeNull();
  });

  it('forgets the oldest groups past its size or age, and does not hold a group larger than all of it', () => {
    // 72 bytes each in the ring: 7 numbers of 8 bytes, then the id (1) and the envelope (10) as UTF-8, padded to 8.
    const bySize = new RecentLog({ maxBytes: 150, maxAgeMs: 60_000, idleMs: Infinity });
    bySize.add(1, [ev('a')], 0);
    bySize.add(2, [ev('b')], 0);
    expect(bySize.low).toBe(1);
    // The third does not fit after the second: it goes to the ring's start, over the first.
    bySize.add(3, [ev('c')], 0);
    expect([bySize.low, bySize.high]).toEqual([2, 3]);
    expect(ids(bySize.read({ oid: 'o', stream: 'event', afterSeq: 1, limit: 10 }))).toEqual(['b', 'c']);
    bySize.add(4, [ev('d')], 0);
    expect([bySize.low, bySize.high]).toEqual([3, 4]);
    expect(ids(bySize.read({ oid: 'o', stream: 'event', afterSeq: 2, limit: 10 }))).toEqual(['c', 'd']);
    // Larger than the ring: not held, and nothing before it either (outputs read those from the file).
    bySize.add(5, [ev('x'.repeat(100))], 0);
    expect([bySize.low, bySize.high]).toEqual([0, 0]);
    expect(bySize.read({ oid: 'o', stream: 'event', afterSeq: 4, limit: 10 })).toBeNull();
    bySize.add(6, [ev('e')], 0);
    expect(ids(bySize.read({ oid: 'o', stream: 'event', afterSeq: 5, limit: 10 }))).toEqual(['e']);

    const byAge = new RecentLog({ maxBytes: 1e9, maxAgeMs: 1000, idleMs: Infinity });
    byAge.add(1, [ev('a')], 0);
    byAge.add(2, [ev('b')], 500);
    byAge.add(3, [ev('c')], 1200);
    expect(byAge.low).toBe(2);
    expect(ids(byAge.read({ oid: 'o', stream: 'event', afterSeq: 1, limit: 10 }))).toEqual(['b', 'c']);
    // Many groups: the dropped slots are compacted away and positions still resolve.
    for (let i = 0; i < 500; i++) byAge.add(4 + i, [ev(`n${i}`)], 5000 + i * 10);
    expect(byAge.low).toBe(4 + 399);
    expect(ids(byAge.read({ oid: 'o', stream: 'event', afterSeq: 500, limit: 2 }))).toEqual(['n497', 'n498']);
  });
  it('keeps nothing while nothing reads it (a node without outputs), and keeps again after a read', () => {
    const log = new RecentLog({ maxBytes: 1e9, maxAgeMs: 60_000, idleMs: 1000 });
    const t = performance.now() + 5000; // Nothing has read for 5 s.
    log.add(1, [ev('a')], t);
    log.add(2, [ev('b')], t);
    expect([log.low, log.high]).toEqual([0, 0]);
    // An output reads: nothing held, so the file answers; what is committed after it is kept.
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 2, limit: 10 }, t)).toBeNull();
    log.add(3, [ev('c')], t + 10);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 2, limit: 10 }, t + 20))).toEqual(['c']);
    // Held groups are let go at the first commit after the readers went quiet.
    log.add(4, [ev('d')], t + 500);
    expect(log.high).toBe(4);
    log.add(5, [ev('e')], t + 2000);
    expect([log.low, log.high]).toEqual([0, 0]);
  });

  it('stops copying groups while its readers are all far behind it, and starts again once one reads at the end', () => {
    const log = new RecentLog({ maxBytes: 1e9, maxAgeMs: 500, idleMs: 1000 });
    const t = performance.now();
    log.add(1, [ev('a')], t);
    // The log runs on to position 50,040; its readers stay far behind (more than a full group of 20,000).
    for (let i = 2; i <= 40; i++) log.add(50_000 + i, [ev(`e${i}`)], t + i * 100);
    // An output far behind (reading the file) does not count as a reader of the tail.
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 3, limit: 10 }, t + 4000)).toBeNull();
    log.add(50_041, [ev('f')], t + 4100);
    expect([log.low, log.high]).toEqual([0, 0]);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 20, limit: 10 }, t + 4200)).toBeNull();
    log.add(50_042, [ev('g')], t + 4300);
    expect(log.high).toBe(0);
    // Caught up with the log's end: what follows is kept again.
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 50_042, limit: 10 }, t + 4400)).toBeNull();
    log.add(50_043, [ev('h')], t + 4500);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 50_042, limit: 10 }, t + 4600))).toEqual(['h']);
  });

  it('starts keeping again for a reader a group or two short of the end, as a caught-up output under steady commits reads', () => {
    const log = new RecentLog({ maxBytes: 1e9, maxAgeMs: 500, idleMs: 1000 });
    const t = performance.now() + 5000; // Nothing has read for 5 s: nothing kept.
    const group = (first: number) => Array.from({ length: 1000 }, (_, i) => ev(`e${first + i}`));
    log.add(1, group(1), t);
    log.add(1001, group(1001), t + 10);
    expect(log.high).toBe(0);
    // Far behind (more than a full group of 20,000): still nothing kept.
    log.add(30_001, group(30_001), t + 20);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 5000, limit: 10 }, t + 30)).toBeNull();
    log.add(31_001, group(31_001), t + 40);
    expect(log.high).toBe(0);
    // One group short of the end (the next group was reported while it read): kept from the next group on.
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 31_000, limit: 10 }, t + 50)).toBeNull();
    log.add(32_001, group(32_001), t + 60);
    expect([log.low, log.high]).toEqual([32_001, 33_000]);
  });

  it('by default still holds the last second of a node taking 40,000 events/s (an output a second behind reads no file)', () => {
    const log = new RecentLog(RECENT_LOG_LIMITS);
    // Groups of 1,000 envelopes of 340 characters (the simulator's mean) every 25 ms: 40,000 events/s.
    const body = 'x'.repeat(340 - '{"id":""}'.length - 8);
    let next = 1;
    for (let g = 0; g < 80; g++) {
      const group: StoredEvent[] = [];
      for (let i = 0; i < 1000; i++) group.push(ev(`${String(next + i).padStart(8, '0')}${body}`));
      log.add(next, group, g * 25);
      next += 1000;
    }
    // Two seconds of groups committed; an output that stopped one second ago resumes after position 40,000.
    const rows = log.read({ oid: 'o', stream: 'event', afterSeq: 40_000, limit: 5000 });
    expect(rows, 'a read one second back is answered from memory').not.toBeNull();
    expect(rows!.map((r) => r.seq)).toEqual(Array.from({ length: 5000 }, (_, i) => 40_001 + i));
  });
  it('lets go of everything once it has aged out, even without another commit', async () => {
    const log = new RecentLog({ maxBytes: 1e9, maxAgeMs: 30, idleMs: Infinity });
    log.add(1, [ev('a')]);
    log.add(2, [ev('b')]);
    expect(log.high).toBe(2);
    await waitFor(() => log.high === 0, { message: 'the groups dropped after their age' });
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 1, limit: 10 })).toBeNull();
    // And it starts again at the next commit, wherever that lands.
    log.add(9, [ev('c')]);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 8, limit: 10 }))).toEqual(['c']);
  });

  it('keeps its own copy of a group handed over packed in shared buffers, which the next group overwrites', () => {
    const log = new RecentLog({ maxBytes: 1e9, maxAgeMs: 60_000, idleMs: Infinity });
    const shared = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size));
    const buffers = { bytes: shared(64), fields: new Float64Array(new SharedArrayBuffer(2 * EVENT_FIELDS * 8)) };
    const intern = new Map<string, number>();
    const pack = (events: StoredEvent[]) => {
      const p = packEvents(events, buffers, intern, shared);
      return { count: p.count, strings: p.strings, fields: buffers.fields.subarray(0, p.count * EVENT_FIELDS), bytes: buffers.bytes.subarray(0, p.bytes) };
    };
    // Multi-byte text, a null sid, a platform stream; the buffers grow while packing.
    const first: StoredEvent[] = [
      { ...ev('é€😀'), json: '{"id":"é€😀","text":"' + 'ß'.repeat(40) + '"}' },
      { ...ev('b', 'o', 'audit'), sid: null, event_type: 'sensor_over_quota' },
    ];
    log.add(1, pack(first));
    // The same buffers take the next group: what the log holds must not change with them.
    log.add(3, pack([ev('c', 'other')]));
    buffers.bytes.fill(0);
    buffers.fields.fill(0);
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 0, limit: 10 })).toEqual([{ seq: 1, oid: 'o', sid: 's', event_type: 'T', json: first[0]!.json }]);
    expect(log.read({ oid: 'o', stream: 'audit', afterSeq: 0, limit: 10 })).toEqual([{ seq: 2, oid: 'o', sid: null, event_type: 'sensor_over_quota', json: first[1]!.json }]);
    expect(ids(log.read({ oid: 'other', stream: 'event', afterSeq: 2, limit: 10 }))).toEqual(['c']);
  });

  it('reads back exactly what it holds while groups of every size wrap around its ring many times', () => {
    const log = new RecentLog({ maxBytes: 4096, maxAgeMs: 60_000, idleMs: Infinity });
    let seed = 7;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const all: string[] = [''];
    let next = 1;
    for (let g = 0; g < 400; g++) {
      const group = Array.from({ length: 1 + random(6) }, (_, i) => ev(`${next + i}-${'é'.repeat(random(120))}`));
      log.add(next, group, g);
      for (const e of group) all.push(JSON.parse(e.json).id as string);
      next += group.length;
      if (log.low === 0) continue;
      // Whatever it still holds is intact, from its first position to its last.
      expect(log.high).toBe(next - 1);
      expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: log.low - 1, limit: 1000 }))).toEqual(all.slice(log.low, next));
    }
    expect(log.low).toBeGreaterThan(next - 100);
  });
});
