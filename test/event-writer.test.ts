// The group commit in front of the store: submissions are committed in order, in groups, and a failed
// commit never lets a later batch of a sensor be stored ahead of the one that failed. Real SQLite files,
// real append thread.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { silentLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { EventWriter, type PipelineEvent } from '../src/pipeline/event-writer.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true, maxRetries: 5 });
});

async function openStore(): Promise<SqliteStore> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-writer-'));
  dirs.push(dir);
  const store = SqliteStore.open({ path: path.join(dir, 'picket.db'), synchronous: 'full' });
  await store.migrate();
  return store;
}

const event = (sid: string, n: number, stream: PipelineEvent['stream'] = 'event'): PipelineEvent => ({
  oid: 'o', sid, event_type: 'T', event_time: n, event_id: `${sid}-${n}`, json: JSON.stringify({ sid, n }), stream,
});
const mark = (sid: string, seq: number) => ({ sid, stream_id: 'A', seq });

describe('EventWriter', () => {
  it('stores every submission once, in order, in groups of at most the configured size', async () => {
    const store = await openStore();
    const metrics = new Metrics();
    const writer = new EventWriter(store, new MemoryBus(), metrics, silentLogger(), 200);
    const sensors = ['s1', 's2', 's3', 's4'];
    const done: Array<Promise<void>> = [];
    for (let seq = 1; seq <= 250; seq++) {
      for (const sid of sensors) done.push(writer.submit(Array.from({ length: 5 }, (_, i) => event(sid, seq * 10 + i)), mark(sid, seq)));
      if (seq % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(done);
    // 5,000 events in groups of at most 200 (batches of 5 are never split).
    const commits = Number(/^picket_store_commit_seconds_count (\d+)$/m.exec(await metrics.registry.metrics())?.[1]);
    expect(commits).toBeGreaterThanOrEqual(25);
    for (const sid of sensors) {
      expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 250 });
      const page = await store.queryTimeline({ oid: 'o', sid, start: 0, end: 1e6, limit: 10_000 });
      const ns = page.events.map((e) => (JSON.parse(e) as { n: number }).n);
      expect(ns).toEqual(Array.from({ length: 250 }, (_, k) => Array.from({ length: 5 }, (_, i) => (k + 1) * 10 + i)).flat());
    }
    await writer.close();
    await store.close();
  });

  it("after a failed commit, no later batch of any sensor is stored ahead of it: the waiting batches fail with it, the platform's own events are kept", async () => {
    const store = await openStore();
    // Groups of at most 2 events and batches of 2: every submission is a group of its own, and all but the
    // failing one wait while it commits.
    const writer = new EventWriter(store, new MemoryBus(), new Metrics(), silentLogger(), 2);
    const batch = (sid: string, seq: number) => [event(sid, seq * 10), event(sid, seq * 10 + 1)];
    await writer.submit(batch('s', 1), mark('s', 1));
    const badTask = { task_id: 't', oid: 'o', sid: 's', command: 'x', investigation_id: null, created: 1, expires: null, state: 'bogus', sent_at: null, received_at: null, answered_at: null, error: null, answer: null };
    const failing = writer.submit(batch('s', 2), mark('s', 2), { create: [badTask as never] });
    const next = writer.submit(batch('s', 3), mark('s', 3));
    const waiting = writer.submit(batch('s', 4), mark('s', 4));
    const otherSensor = writer.submit(batch('x', 1), mark('x', 1));
    const platform = writer.submit([event('p', 1, 'deployment')]);
    const outcome = await Promise.allSettled([failing, next, waiting, otherSensor]);
    expect(outcome.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    await platform;
    // Nothing after batch 1 of "s" is stored; the sensors resend and everything lands once, in order.
    expect(await store.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 1 });
    expect(await store.getSequenceMark('x')).toBeNull();
    await writer.submit(batch('s', 2), mark('s', 2));
    await writer.submit(batch('s', 3), mark('s', 3));
    await writer.submit(batch('s', 4), mark('s', 4));
    const ns = (await store.queryTimeline({ oid: 'o', sid: 's', start: 0, end: 100, limit: 100 })).events.map((e) => (JSON.parse(e) as { n: number }).n);
    expect(ns).toEqual([10, 11, 20, 21, 30, 31, 40, 41]);
    expect((await store.queryStream({ oid: 'o', stream: 'deployment', start: 0, end: 100, limit: 10 })).events).toHaveLength(1);
    await writer.close();
    await store.close();
  });
});
