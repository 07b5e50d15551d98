// The delivery loop of one output on a real SQLite event log: what it reads, and where its position stands
// when nothing of its stream is left. The destination is a recording module (the worker's only contract
// with a destination is OutputModule); everything else is the real store, queue and metrics.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OutputConfig } from '../src/domain/outputs.js';
import { Metrics } from '../src/observability/metrics.js';
import { silentLogger } from '../src/observability/logger.js';
import type { OutputModule, OutputRecord } from '../src/sinks/outputs/output-module.js';
import { StoreOutputQueue, type OutputQueue } from '../src/sinks/outputs/output-queue.js';
import { OutputWorker } from '../src/sinks/outputs/output-worker.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { StoredEvent } from '../src/store/store.js';
import { waitFor } from './harness/wait.js';

const OID = 'org-1';

function event(n: number, stream: StoredEvent['stream']): StoredEvent {
  const event_type = stream ? `${stream}_thing` : 'NEW_PROCESS';
  return { oid: OID, sid: stream ? null : 'sensor-1', event_type, event_time: n, event_id: `e${n}`, stream, json: JSON.stringify({ routing: { oid: OID, event_type, event_time: n }, event: { n } }) };
}

describe('OutputWorker on a real event log', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A fresh SQLite store with one organization and one output of its event stream. */
  async function openLog(): Promise<{ store: SqliteStore; config: OutputConfig }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-worker-'));
    const store = SqliteStore.open({ path: path.join(dir, 'picket.db'), synchronous: 'normal' });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => store.close());
    await store.migrate();
    await store.createOrg({ oid: OID, name: 'one', quota: null, created: 1 });
    const config: OutputConfig = {
      oid: OID, name: 'archive', module: 'recording', stream: 'event',
      filters: { event_white_list: [], event_black_list: [], sid: null, tag: null, inv_id: null, sample_rate: 1 },
      shape: { is_flat: false, is_no_routing: false, is_prefix_data: false }, fields: {}, created: 1, updated: 1,
    };
    await store.putOutput(config);
    return { store, config };
  }

  it('moves past other streams\' events at the end of the log once caught up, so its lag reads 0', async () => {
    const { store, config } = await openLog();
    const delivered: OutputRecord[] = [];
    const module: OutputModule = { batching: { maxRecords: 100, maxWaitMs: 0 }, send: async (records) => void delivered.push(...records), close: async () => undefined };
    const metrics = new Metrics();
    const worker = new OutputWorker(config, module, {
      store, queue: new StoreOutputQueue(store, config), metrics, logger: silentLogger(), now: Date.now,
      policy: { retryBaseMs: 10, retryCapMs: 100, pauseAfter: 10, pauseMs: 1000, queueLimit: 1_000_000, overflow: 'keep', idlePollMs: 20 },
    });
    // The log: telemetry, then audit and deployment records after it.
    await store.appendEvents([1, 2, 3].map((n) => event(n, null)), []);
    worker.start();
    cleanups.push(() => worker.stop());
    await waitFor(() => delivered.length === 3, { message: 'the three telemetry events delivered' });
    await store.appendEvents([event(4, 'audit'), event(5, 'deployment'), event(6, 'audit')], []);
    const end = await store.lastLogSeq();
    await waitFor(() => worker.position === end, { message: `the position at the log's end (${end}), past the other streams` });
    const lag = (await metrics.registry.getSingleMetric('picket_output_lag_events')!.get()).values.find((v) => v.labels.output === 'archive');
    expect(lag?.value).toBe(0);
    expect(delivered.map((r) => r.event_type)).toEqual(['NEW_PROCESS', 'NEW_PROCESS', 'NEW_PROCESS']);
    // Telemetry after that is delivered as usual.
    await store.appendEvents([event(7, null)], []);
    worker.wake();
    await waitFor(() => delivered.length === 4, { message: 'the next telemetry event' });
    expect(worker.position).toBe(await store.lastLogSeq());
  });

  it('a queue that fails (its store or bus unreachable) is retried and reopened: the worker carries on and loses nothing', async () => {
    const { store, config } = await openLog();
    // The real store queue, with faults injected: reads and commits fail while `down` is set.
    const real = new StoreOutputQueue(store, config);
    let down = false;
    let opens = 0;
    let closes = 0;
    const fault = (): void => {
      if (down) throw new Error('connection refused');
    };
    const queue: OutputQueue = {
      open: async () => (opens++, real.open()),
      read: async (after, limit) => (fault(), real.read(after, limit)),
      end: () => real.end(),
      commit: async (seq) => (fault(), real.commit(seq)),
      backlog: (after, limit, exact) => real.backlog(after, limit, exact),
      close: async () => void closes++,
    };
    const delivered: number[] = [];
    const module: OutputModule = { batching: { maxRecords: 100, maxWaitMs: 0 }, send: async (records) => void delivered.push(...records.map((r) => r.event_time)), close: async () => undefined };
    const worker = new OutputWorker(config, module, {
      store, queue, metrics: new Metrics(), logger: silentLogger(), now: Date.now,
      policy: { retryBaseMs: 10, retryCapMs: 100, pauseAfter: 10, pauseMs: 1000, queueLimit: 1_000_000, overflow: 'keep', idlePollMs: 20 },
    });
    await store.appendEvents([1, 2].map((n) => event(n, null)), []);
    worker.start();
    cleanups.push(() => worker.stop());
    await waitFor(() => delivered.length === 2, { message: 'the first events' });
    down = true;
    await store.appendEvents([3, 4].map((n) => event(n, null)), []);
    worker.wake();
    const error = await waitFor(async () => (await store.listOrgErrors(OID)).find((e) => e.component === 'outputs/archive'), { message: 'the queue failure recorded' });
    expect(error.error).toMatch(/^queue: connection refused/);
    expect(worker.status().state).not.toBe('stopped');
    down = false;
    await waitFor(() => delivered.length >= 4, { timeoutMs: 15_000, message: 'delivery resumed after the queue came back' });
    expect([...new Set(delivered)]).toEqual([1, 2, 3, 4]);
    expect(opens).toBeGreaterThanOrEqual(2);
    expect(closes).toBeGreaterThanOrEqual(1);
    // Working again: the error is cleared.
    await waitFor(async () => !(await store.listOrgErrors(OID)).some((e) => e.component === 'outputs/archive'), { message: 'the queue error cleared' });
  });
  it('writes its position beside delivery: a cursor write that takes long holds back no batch, and the last position is written on stop', async () => {
    const { store, config } = await openLog();
    const real = new StoreOutputQueue(store, config);
    // Cursor writes wait for the test to let them through (on one node they queue behind group commits).
    const gates: Array<() => void> = [];
    const committed: number[] = [];
    const queue: OutputQueue = {
      open: () => real.open(), read: (after, limit) => real.read(after, limit), end: () => real.end(), backlog: (after, limit, exact) => real.backlog(after, limit, exact), close: async () => undefined,
      commit: async (seq) => {
        await new Promise<void>((resolve) => gates.push(resolve));
        await real.commit(seq);
        committed.push(seq);
      },
    };
    const delivered: number[] = [];
    const module: OutputModule = { batching: { maxRecords: 2, maxWaitMs: 0 }, send: async (records) => void delivered.push(...records.map((r) => r.event_time)), close: async () => undefined };
    const worker = new OutputWorker(config, module, {
      store, queue, metrics: new Metrics(), logger: silentLogger(), now: Date.now,
      policy: { retryBaseMs: 10, retryCapMs: 100, pauseAfter: 10, pauseMs: 1000, queueLimit: 1_000_000, overflow: 'keep', idlePollMs: 20 },
    });
    await store.appendEvents([1, 2, 3, 4, 5, 6, 7].map((n) => event(n, null)), []);
    worker.start();
    // The first batch's position is being written and stays blocked: the other batches go out meanwhile.
    await waitFor(() => delivered.length === 7, { message: 'every batch delivered while the first cursor write is blocked' });
    expect(gates).toHaveLength(1);
    expect(committed).toEqual([]);
    const end = await store.lastLogSeq();
    expect(worker.position).toBe(end);
    // Stopping waits for the write under way, then writes the last position.
    const stopped = worker.stop();
    gates.shift()!();
    await waitFor(() => gates.length === 1, { message: 'the last position written on stop' });
    gates.shift()!();
    await stopped;
    expect(committed.at(-1)).toBe(end);
    expect(await store.getOutputCursor(OID, 'archive')).toBe(end);
  });

  it("saves a cursor only after the module's own record of what it delivered is synced, on stop too", async () => {
    const { store, config } = await openLog();
    const real = new StoreOutputQueue(store, config);
    /** The last position delivered when each sync of the module's record began, in order. */
    const syncedThrough: number[] = [];
    let lastDelivered = 0;
    const violations: string[] = [];
    const committed: number[] = [];
    const queue: OutputQueue = {
      open: () => real.open(), read: (after, limit) => real.read(after, limit), end: () => real.end(), backlog: (after, limit, exact) => real.backlog(after, limit, exact), close: async () => undefined,
      commit: async (seq) => {
        // What survives a power cut: a cursor on disk past the module's record on disk would skip what it cuts.
        if (seq > (syncedThrough.at(-1) ?? -1)) violations.push(`cursor ${seq} saved with the record synced through ${syncedThrough.at(-1) ?? 'nothing'}`);
        await real.commit(seq);
        committed.push(seq);
      },
    };
    const module: OutputModule = {
      batching: { maxRecords: 3, maxWaitMs: 0 },
      send: async (records) => void (lastDelivered = records.at(-1)!.seq),
      syncPosition: async () => {
        const through = lastDelivered;
        await new Promise((r) => setTimeout(r, 5));
        syncedThrough.push(through);
      },
      close: async () => undefined,
    };
    const worker = new OutputWorker(config, module, {
      store, queue, metrics: new Metrics(), logger: silentLogger(), now: Date.now,
      policy: { retryBaseMs: 10, retryCapMs: 100, pauseAfter: 10, pauseMs: 1000, queueLimit: 1_000_000, overflow: 'keep', idlePollMs: 20 },
    });
    worker.start();
    for (let n = 1; n <= 40; n += 4) await store.appendEvents([n, n + 1, n + 2, n + 3].map((k) => event(k, null)), []);
    const end = await store.lastLogSeq();
    await waitFor(() => worker.position === end, { message: 'everything delivered' });
    await worker.stop();
    expect(committed.at(-1)).toBe(end);
    expect(syncedThrough.length).toBeGreaterThanOrEqual(committed.length);
    expect(violations).toEqual([]);
  });

  it('a cursor write that fails is the queue\'s failure: recorded, the queue reopened, delivery carried on once from its position', async () => {
    const { store, config } = await openLog();
    const real = new StoreOutputQueue(store, config);
    let failCommits = true;
    let opens = 0;
    const queue: OutputQueue = {
      open: async () => (opens++, real.open()), read: (after, limit) => real.read(after, limit), end: () => real.end(), backlog: (after, limit, exact) => real.backlog(after, limit, exact), close: async () => undefined,
      commit: async (seq) => {
        if (failCommits) throw new Error('cursor table locked');
        await real.commit(seq);
      },
    };
    const delivered: number[] = [];
    const module: OutputModule = { batching: { maxRecords: 100, maxWaitMs: 0 }, send: async (records) => void delivered.push(...records.map((r) => r.event_time)), close: async () => undefined };
    const worker = new OutputWorker(config, module, {
      store, queue, metrics: new Metrics(), logger: silentLogger(), now: Date.now,
      policy: { retryBaseMs: 10, retryCapMs: 100, pauseAfter: 10, pauseMs: 1000, queueLimit: 1_000_000, overflow: 'keep', idlePollMs: 20 },
    });
    cleanups.push(() => worker.stop());
    await store.appendEvents([1, 2].map((n) => event(n, null)), []);
    worker.start();
    const error = await waitFor(async () => (await store.listOrgErrors(OID)).find((e) => e.component === 'outputs/archive'), { message: 'the failed cursor write recorded' });
    expect(error.error).toMatch(/^queue: cursor table locked/);
    failCommits = false;
    await store.appendEvents([3].map((n) => event(n, null)), []);
    worker.wake();
    const end = await store.lastLogSeq();
    await waitFor(async () => (await store.getOutputCursor(OID, 'archive')) === end, { timeoutMs: 15_000, message: 'the position written once the queue works again' });
    expect(opens).toBeGreaterThanOrEqual(2);
    expect(delivered).toEqual([1, 2, 3]);
  });
});
