// The in-memory tail of the event log that outputs keeping up read from: it answers only for positions
// it holds without a gap, filtered like the file's query, and forgets by size and age.
import { describe, expect, it } from 'vitest';
import { RECENT_LOG_LIMITS, RecentLog } from '../src/store/sqlite/recent-log.js';
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

  it('forgets the oldest groups past its size or age, always keeping the newest', () => {
    const bySize = new RecentLog({ maxChars: 25, maxAgeMs: 60_000, idleMs: Infinity });
    bySize.add(1, [ev('a')], 0); // 10 characters each
    bySize.add(2, [ev('b')], 0);
    expect(bySize.low).toBe(1);
    bySize.add(3, [ev('c')], 0);
    expect(bySize.low).toBe(2);
    bySize.add(4, [ev('x'.repeat(100))], 0);
    expect([bySize.low, bySize.high]).toEqual([4, 4]);

    const byAge = new RecentLog({ maxChars: 1e9, maxAgeMs: 1000, idleMs: Infinity });
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
    const log = new RecentLog({ maxChars: 1e9, maxAgeMs: 60_000, idleMs: 1000 });
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
    const log = new RecentLog({ maxChars: 1e9, maxAgeMs: 30, idleMs: Infinity });
    log.add(1, [ev('a')]);
    log.add(2, [ev('b')]);
    expect(log.high).toBe(2);
    await waitFor(() => log.high === 0, { message: 'the groups dropped after their age' });
    expect(log.read({ oid: 'o', stream: 'event', afterSeq: 1, limit: 10 })).toBeNull();
    // And it starts again at the next commit, wherever that lands.
    log.add(9, [ev('c')]);
    expect(ids(log.read({ oid: 'o', stream: 'event', afterSeq: 8, limit: 10 }))).toEqual(['c']);
  });
});
