// The embedded SQLite store: the shared Store contract on real files, then what only SQLite has —
// pragmas, versioned migrations, query plans of the timeline read, and durability across a SIGKILL.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { AppendThread, MAX_KEPT_GROUP_BYTES } from '../src/store/sqlite/append-thread.js';
import { CheckpointThread } from '../src/store/sqlite/checkpoint-thread.js';
import { openDatabase, walSizeLimitBytes } from '../src/store/sqlite/connection.js';
import { MIGRATIONS, migrate, SchemaTooNewError, schemaVersion, type Migration } from '../src/store/sqlite/migrations.js';
import { COUNT_SLICE_POSITIONS, SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { WAL_AUTOCHECKPOINT_PAGES, WAL_FALLBACK_CHECKPOINT_PAGES } from '../src/store/sqlite/connection.js';
import { streamParams, streamSql, timelineParams, timelineSql } from '../src/store/sqlite/timeline.js';
import { runStoreContract } from './contract/store-contract.js';
import { ManagedProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-store-'));
  tempDirs.push(dir);
  return dir;
}

/** A store on a new file, migrated. */
async function migratedStore(synchronous: 'full' | 'normal'): Promise<{ file: string; store: SqliteStore }> {
  const file = path.join(tempDir(), 'picket.db');
  const store = SqliteStore.open({ path: file, synchronous });
  await store.migrate();
  return { file, store };
}

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

runStoreContract('sqlite', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-contract-'));
  const store = SqliteStore.open({ path: path.join(dir, 'picket.db'), synchronous: 'full' });
  return { store, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

// The same contract with the group commit on the store's own connection (no append thread).
runStoreContract('sqlite, commits in-thread', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-contract-'));
  const store = SqliteStore.open({ path: path.join(dir, 'picket.db'), synchronous: 'full', appendThread: false });
  return { store, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

describe('SqliteStore (SQLite specifics)', () => {
  it('commits the event log on its append thread: the event loop keeps running during a commit', async () => {
    const { file, store } = await migratedStore('full');
    await store.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 });
    const events = Array.from({ length: 20_000 }, (_, i) => ({
      oid: 'o', sid: 's', event_type: 'T', event_time: i, event_id: `e${i}`, json: JSON.stringify({ routing: { i }, event: { pad: 'x'.repeat(200) } }),
    }));
    // In-thread, the whole commit runs before anything queued on the loop: the callback would come after.
    let loopRanDuringCommit = false;
    setImmediate(() => (loopRanDuringCommit = true));
    await store.appendEvents(events, [{ sid: 's', stream_id: 'A', seq: 1 }]);
    expect(loopRanDuringCommit).toBe(true);
    // Committed before it resolved, and visible to the main connection's reads at once.
    expect(await store.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 1 });
    expect(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 })).toBe(20_000);
    // Groups handed over back to back are committed in order; close() waits for them.
    const more = [0, 1, 2].map((n) => store.appendEvents([{ ...events[0]!, event_id: `m${n}` }], [{ sid: 's', stream_id: 'A', seq: 2 + n }]));
    await store.close();
    await Promise.all(more);
    const again = SqliteStore.open({ path: file, synchronous: 'full' });
    expect(await again.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 4 });
    await again.close();
  });

  it('a group reaches the append thread packed in shared memory and is stored as given: any script, null sids, streams, groups past the first buffers', async () => {
    const { file, store } = await migratedStore('full');
    for (const oid of ['o', 'p']) await store.createOrg({ oid, name: oid, quota: null, created: 1 });
    const texts = ['ascii', 'é à ü', '中文字符', '😀 emoji', 'mixed é 中 😀 end'];
    const envelope = (i: number, pad: number): string => JSON.stringify({ routing: { i }, event: { text: texts[i % texts.length], pad: 'ø'.repeat(pad) } });
    // About 6 MiB of UTF-8 and 3,000 events: both shared buffers (1 MiB, 1,024 events at first) grow in
    // the middle of the group. Two organizations, many sensors, platform events without a sensor.
    const big = Array.from({ length: 3_000 }, (_, i) => ({
      oid: i % 2 === 0 ? 'o' : 'p', sid: i % 7 === 0 ? null : `s${i % 50}`, event_type: i % 7 === 0 ? 'audit' : `T${i % 3}`, event_time: 1_700_000_000_000 + i,
      event_id: i % 5 === 0 ? `é-${i}` : `b${i}`, json: envelope(i, 1_000), stream: i % 7 === 0 ? ('audit' as const) : null,
    }));
    await store.appendEvents(big, [{ sid: 's1', stream_id: 'A', seq: 1 }]);
    // A smaller group after it reuses the buffers: nothing of the larger one may show through.
    const small = Array.from({ length: 10 }, (_, i) => ({ oid: 'o', sid: 's1', event_type: 'T', event_time: 10_000 + i, event_id: `s${i}`, json: envelope(i + 1, i), stream: null }));
    await store.appendEvents(small, [{ sid: 's1', stream_id: 'A', seq: 2 }]);
    await store.close();
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT oid, sid, event_type, event_time, event_id, json, stream, typeof(json) AS kind, typeof(event_id) AS id_kind FROM events ORDER BY seq').all() as Array<Record<string, unknown>>;
    db.close();
    expect(rows.length).toBe(big.length + small.length);
    expect(new Set(rows.map((r) => `${String(r.kind)} ${String(r.id_kind)}`))).toEqual(new Set(['text text']));
    expect(rows.map(({ oid, sid, event_type, event_time, event_id, json, stream }) => ({ oid, sid, event_type, event_time, event_id, json, stream }))).toEqual([...big, ...small]);
  });

  it('keeps the shared buffers of ordinary groups for the next ones, and lets go of one grown for a burst of very large events', async () => {
    const { store } = await migratedStore('full');
    await store.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 });
    const group = (tag: string, n: number, pad: number) =>
      Array.from({ length: n }, (_, i) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: i, event_id: `${tag}${i}`, json: JSON.stringify({ pad: 'x'.repeat(pad) }) }));
    await store.appendEvents(group('a', 100, 100), []);
    const thread = (store as unknown as { appender: AppendThread }).appender;
    expect(thread).toBeInstanceOf(AppendThread);
    const ordinary = thread.spareBytes;
    expect(ordinary).toBeGreaterThan(0);
    expect(ordinary).toBeLessThanOrEqual(MAX_KEPT_GROUP_BYTES);
    // About 70 MB of envelopes: the buffer grows to 128 MiB, past what is kept.
    await store.appendEvents(group('b', 700, 100_000), []);
    expect(thread.spareBytes).toBe(0);
    // The next ordinary group starts again from small buffers, kept as before.
    await store.appendEvents(group('c', 100, 100), []);
    expect(thread.spareBytes).toBe(ordinary);
    expect(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 })).toBe(900);
    await store.close();
  });

  it('readLog reports where its rows came from: the file for what an earlier run committed, the memory tail for the groups committed since', async () => {
    const { file, store: before } = await migratedStore('full');
    await before.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 });
    const group = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: from + i, event_id: `e${from + i}`, json: `{"n":${from + i}}` }));
    await before.appendEvents(group(0, 5), []);
    await before.close();
    const store = SqliteStore.open({ path: file, synchronous: 'full' });
    const reads: Array<[string, number]> = [];
    store.observeLogReads((source, rows) => {
      if (rows > 0) reads.push([source, rows]);
    });
    const first = await store.readLog({ oid: 'o', stream: 'event', afterSeq: 0, limit: 100 });
    expect(first).toHaveLength(5);
    expect(reads).toEqual([['store', 5]]);
    await store.appendEvents(group(5, 3), []);
    const second = await store.readLog({ oid: 'o', stream: 'event', afterSeq: first.at(-1)!.seq, limit: 100 });
    expect(second.map((r) => r.json)).toEqual(['{"n":5}', '{"n":6}', '{"n":7}']);
    expect(reads).toEqual([['store', 5], ['memory', 3]]);
    await store.close();
  });

  it("the main thread's small writes (cursors, alive, usage) go to the append thread, queued behind the group it is committing", async () => {
    const { store } = await migratedStore('full');
    await store.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 });
    await store.putOutput({ oid: 'o', name: 'out', module: 'file', stream: 'event', filters: {} as never, shape: {} as never, fields: {}, created: 1, updated: 1 });
    await store.createSensor({ sid: 's', oid: 'o', iid: 'i', secret_hash: 'x', tags: [], enroll: 1, hostname: 'h', plat: 1, arch: 1, int_ip: '', ext_ip: '', mac: '', fingerprint: 'f', sensor_version: '1', kernel: false });
    await store.appendEvents([{ oid: 'o', sid: 's', event_type: 'T', event_time: 0, event_id: 'first', json: '{}' }], []);
    // Written on the main connection, each would wait on SQLite's lock, on the event loop, for the whole commit.
    const thread = (store as unknown as { appender: AppendThread }).appender;
    expect(thread).toBeInstanceOf(AppendThread);
    const handed: string[] = [];
    const write = thread.write.bind(thread);
    thread.write = (statements) => {
      handed.push(...statements.map(([sql]) => sql.split(' ').slice(0, 3).join(' ')));
      return write(statements);
    };
    const big = Array.from({ length: 50_000 }, (_, i) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: i, event_id: `b${i}`, json: JSON.stringify({ pad: 'x'.repeat(300) }) }));
    const commit = store.appendEvents(big, []);
    await Promise.all([
      store.setOutputCursor('o', 'out', 7),
      store.touchAlive([{ sid: 's', alive: 1234 }]),
      store.addUsage([{ oid: 'o', period: 0, cat: 'events', k: 'in', v: 5, mode: 'add' }]),
    ]);
    expect(handed).toEqual(['UPDATE output_cursors SET', 'UPDATE sensors SET', 'INSERT INTO usage_counters']);
    // Queued behind the group: it is committed by the time they are.
    expect(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 })).toBe(50_001);
    await commit;
    expect(await store.getOutputCursor('o', 'out')).toBe(7);
    expect((await store.getSensor('s'))?.alive).toBe(1234);
    expect(await store.listUsage('o', 0, 0)).toEqual([expect.objectContaining({ cat: 'events', k: 'in', v: 5 })]);
    // A cursor never moves back, on the thread as on the main connection.
    await store.setOutputCursor('o', 'out', 3);
    expect(await store.getOutputCursor('o', 'out')).toBe(7);
    await store.close();
  });

  it('the checkpoint thread copies the WAL into the database file while groups are committed, and the WAL starts over once it is all copied', async () => {
    const { file, store } = await migratedStore('full');
    await store.appendEvents([{ oid: 'o', sid: 'p', event_type: 'T', event_time: 1, event_id: 'first', json: '{}' }], []);
    // Beside the checkpoint thread, the append thread checkpoints only past the fallback threshold.
    expect((store as unknown as { checkpointer: unknown }).checkpointer).toBeInstanceOf(CheckpointThread);
    expect((store as unknown as { appender: AppendThread }).appender.autocheckpointPages).toBe(WAL_FALLBACK_CHECKPOINT_PAGES);
    const initialSize = statSync(file).size;
    // 160,000 events, about 20,000 pages of WAL: past the checkpoint thread's threshold, below the append
    // thread's fallback, so neither committing connection checkpoints; only the checkpoint thread can have
    // written them to the database file.
    const group = (g: number) => Array.from({ length: 2000 }, (_, i) => ({ oid: 'o', sid: `s${i % 50}`, event_type: 'T', event_time: g * 10_000 + i, event_id: `g${g}-${i}`, json: JSON.stringify({ pad: 'x'.repeat(300) }) }));
    for (let g = 0; g < 80; g++) await store.appendEvents(group(g), [{ sid: 's0', stream_id: 'A', seq: g + 1 }]);
    await waitFor(() => statSync(file).size > initialSize + 20 * 1024 * 1024, { message: 'the database file grown by the checkpoints' });
    expect(statSync(`${file}-wal`).size / 4096).toBeLessThan(WAL_FALLBACK_CHECKPOINT_PAGES);
    // Once everything is copied, the next commit writes the WAL from its beginning: it stays small.
    const probe = new Database(file);
    try {
      let n = 0;
      await waitFor(async () => {
        await store.appendEvents([{ oid: 'o', sid: 'p', event_type: 'T', event_time: 1, event_id: `p${n++}`, json: '{}' }], []);
        const [row] = probe.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>;
        return row!.log < 100;
      }, { message: 'the WAL restarted' });
    } finally {
      probe.close();
    }
    expect(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 })).toBeGreaterThanOrEqual(160_001);
    await store.close();
  });

  it('a checkpoint thread that stops is started again and checkpoints again', async () => {
    const { file, store } = await migratedStore('full');
    await store.appendEvents([{ oid: 'o', sid: 'p', event_type: 'T', event_time: 1, event_id: 'first', json: '{}' }], []);
    const checkpointer = (store as unknown as { checkpointer: CheckpointThread }).checkpointer;
    await checkpointer.kill();
    await waitFor(() => checkpointer.restarts === 1, { message: 'the checkpoint thread started again' });
    // As in the test above: about 20,000 pages of WAL, below the append thread's fallback, so only a
    // running checkpoint thread can have copied them into the database file.
    const initialSize = statSync(file).size;
    const group = (g: number) => Array.from({ length: 2000 }, (_, i) => ({ oid: 'o', sid: `s${i % 50}`, event_type: 'T', event_time: g * 10_000 + i, event_id: `r${g}-${i}`, json: JSON.stringify({ pad: 'x'.repeat(300) }) }));
    for (let g = 0; g < 80; g++) await store.appendEvents(group(g), [{ sid: 's0', stream_id: 'A', seq: g + 1 }]);
    await waitFor(() => statSync(file).size > initialSize + 20 * 1024 * 1024, { message: 'the database file grown by the restarted thread' });
    await store.close();
    // Closed for good: no restart after close.
    expect(checkpointer.restarts).toBe(1);
  });

  it('a checkpoint thread that cannot be created is tried again later, with a longer wait, until it starts', async () => {
    const file = path.join(tempDir(), 'restart.db');
    openDatabase(file, 'full').close();
    const workerFile = path.join(ROOT, 'dist/store/sqlite/checkpoint-worker.js');
    const messages: string[] = [];
    const thread = new CheckpointThread(workerFile, file, 'full', (m) => messages.push(m));
    try {
      // Its script unreachable while it is down (an upgrade under way): creating the thread throws.
      (thread as unknown as { workerFile: string }).workerFile = 'not-a-path.js';
      await thread.kill();
      await waitFor(() => messages.some((m) => m.includes('could not be started')), { message: 'the failed start reported' });
      expect(thread.restarts).toBe(0);
      expect(messages.find((m) => m.includes('could not be started'))).toMatch(/starting it again in 2000 ms/);
      (thread as unknown as { workerFile: string }).workerFile = workerFile;
      await waitFor(() => thread.restarts === 1, { message: 'the thread started once its script is back' });
    } finally {
      await thread.close();
    }
  });

  it('a WAL that starts over from the size the fallback lets it reach keeps its file: shortening it would stall that commit', () => {
    const file = path.join(tempDir(), 'wal-limit.db');
    const db = openDatabase(file, 'normal');
    try {
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      expect(db.pragma('journal_size_limit', { simple: true })).toBe(walSizeLimitBytes(pageSize));
      expect(walSizeLimitBytes(pageSize)).toBeGreaterThan(WAL_FALLBACK_CHECKPOINT_PAGES * (pageSize + 24));
      db.pragma('wal_autocheckpoint = 0');
      db.exec('CREATE TABLE t (b BLOB)');
      const insert = db.prepare('INSERT INTO t VALUES (?)');
      // 20,000 pages of WAL (about 80 MiB): past the 64 MiB the WAL used to be shortened to, well below
      // the fallback's 40,000.
      const blob = Buffer.alloc(pageSize - 200, 1);
      db.transaction(() => {
        for (let i = 0; i < 20_000; i++) insert.run(blob);
      })();
      const wal = `${file}-wal`;
      const grown = statSync(wal).size;
      expect(grown).toBeGreaterThan(20_000 * pageSize);
      const [copied] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>;
      expect(copied!.checkpointed).toBe(copied!.log);
      // Everything copied: this commit writes the WAL from its first frame again, over the same file.
      insert.run(blob);
      const [after] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>;
      expect(after!.log).toBeLessThan(10);
      expect(statSync(wal).size).toBe(grown);
    } finally {
      db.close();
    }
  });

  it('what waits while the thread commits is committed together, each request on its own: a failing small write fails alone, a failing group fails the groups behind it until the failure is seen', async () => {
    const { store } = await migratedStore('full');
    await store.appendEvents([{ oid: 'o', sid: 's', event_type: 'T', event_time: 0, event_id: 'first', json: '{}' }], []);
    const thread = (store as unknown as { appender: AppendThread }).appender;
    expect(thread).toBeInstanceOf(AppendThread);
    const ev = (id: string) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: 1, event_id: id, json: '{}' });
    const badTask = { task_id: 't', oid: 'o', sid: 's', command: 'x', investigation_id: null, created: 1, expires: null, state: 'bogus', sent_at: null, received_at: null, answered_at: null, error: null, answer: null };
    // A large group first: everything after it reaches the thread while it commits.
    const big = Array.from({ length: 50_000 }, (_, i) => ({ ...ev(`b${i}`), json: JSON.stringify({ pad: 'x'.repeat(300) }) }));
    const outcome = await Promise.allSettled([
      store.appendEvents(big, [{ sid: 's', stream_id: 'A', seq: 1 }]),
      thread.write([['INSERT INTO no_such_table VALUES (?)', [1]]]),
      thread.write([['INSERT INTO sequence_marks (sid, stream_id, seq) VALUES (?, ?, ?)', ['w', 'A', 9]]]),
      store.appendEvents([ev('g2')], [{ sid: 's', stream_id: 'A', seq: 2 }]),
      store.appendEvents([ev('g3')], [{ sid: 's', stream_id: 'A', seq: 3 }], { create: [badTask as never] }),
      store.appendEvents([ev('g4')], [{ sid: 's', stream_id: 'A', seq: 4 }]),
    ]);
    expect(outcome.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    expect((outcome[5] as PromiseRejectedResult).reason.message).toMatch(/an earlier group commit failed/);
    expect(await store.getSequenceMark('w')).toEqual({ sid: 'w', stream_id: 'A', seq: 9 });
    expect(await store.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 2 });
    // Once the failure is seen, groups commit again.
    await store.appendEvents([ev('g3')], [{ sid: 's', stream_id: 'A', seq: 3 }]);
    expect(await store.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 3 });
    expect(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 })).toBe(50_003);
    await store.close();
  });

  it('groups of different sizes handed over back to back are stored exactly (the hand-over array is reused and emptied)', async () => {
    const store = SqliteStore.open({ path: path.join(tempDir(), 'picket.db'), synchronous: 'full' });
    await store.migrate();
    const ev = (id: string) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: 1, event_id: id, json: JSON.stringify({ id }) });
    const groups = [['a1', 'a2', 'a3', 'a4'], ['b1'], ['c1', 'c2'], [], ['d1', 'd2', 'd3']];
    // Not awaited one by one: each is handed over while the one before it commits.
    await Promise.all(groups.map((ids) => store.appendEvents(ids.map(ev), [])));
    expect((store as unknown as { appender: unknown }).appender).toBeInstanceOf(AppendThread);
    const rows = await store.readLog({ oid: 'o', stream: 'event', afterSeq: 0, limit: 100 });
    expect(rows.map((r) => (JSON.parse(r.json) as { id: string }).id)).toEqual(groups.flat());
    await store.close();
  });

  it('outputs that keep up read the last groups from memory, and get exactly what the file holds', async () => {
    const { file, store } = await migratedStore('full');
    const ev = (id: string, oid: string, stream: string | null) => ({ oid, sid: 's', event_type: 'T', event_time: 1, event_id: id, json: JSON.stringify({ id }), stream });
    const streams = [null, 'audit', 'event'] as const;
    let n = 0;
    const group = (size: number) => Array.from({ length: size }, () => ev(`e${++n}`, n % 3 === 0 ? 'p' : 'o', streams[n % 3]!));
    await Promise.all([store.appendEvents(group(7), []), store.appendEvents(group(1), []), store.appendEvents(group(12), [])]);
    // Rows the memory did not see: inserted on the main connection (billing) between groups.
    await store.closeUsagePeriod(1, [ev('billing-1', 'o', 'billing'), ev('billing-2', 'o', null)], 2);
    await store.appendEvents(group(5), []);
    // The last group again, without its report: what memory holds ends before the file does.
    const recent = (store as unknown as { recent: { low: number; high: number } }).recent;
    expect(recent.high).toBe(await store.lastLogSeq());
    // The last group as if its report had not arrived yet: memory ends two positions before the file.
    await store.appendEvents(group(4), []);
    const last = await store.lastLogSeq();
    (recent as unknown as { chunks: Array<{ count: number }> }).chunks.at(-1)!.count -= 2;
    expect(recent.high).toBe(last - 2);
    expect(recent.low).toBeGreaterThan(20);
    // What the file is asked for: only what lies beyond memory, when memory holds the start.
    const tables = (store as unknown as { outputs: { readLog(q: { afterSeq: number }): unknown } }).outputs;
    const asked: number[] = [];
    const readFile = tables.readLog.bind(tables);
    tables.readLog = (q) => (asked.push(q.afterSeq), readFile(q));
    const direct = new Database(file, { readonly: true });
    const fromFile = (oid: string, stream: string, after: number, limit: number) =>
      direct.prepare(`SELECT seq, oid, sid, event_type, json FROM events WHERE oid = ? AND ${stream === 'event' ? 'stream IS NULL' : 'stream = ?'} AND seq > ? ORDER BY seq LIMIT ?`)
        .all(...(stream === 'event' ? [oid, after, limit] : [oid, stream, after, limit]));
    let compared = 0;
    for (const oid of ['o', 'p']) {
      for (const stream of ['event', 'audit', 'billing'] as const) {
        for (let after = 0; after <= last; after++) {
          for (const limit of [1, 3, 100]) {
            asked.length = 0;
            expect(await store.readLog({ oid, stream, afterSeq: after, limit }), `${oid} ${stream} after ${after} limit ${limit}`).toEqual(fromFile(oid, stream, after, limit));
            if (after >= recent.low - 1) expect(Math.min(...asked)).toBeGreaterThanOrEqual(last - 2);
            compared++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(100);
    direct.close();
    await store.close();
  });

  it('counts a long stretch of the log in slices, letting the event loop run between them, to the exact figure', async () => {
    const { file, store } = await migratedStore('normal');
    const total = COUNT_SLICE_POSITIONS * 2 + 1234;
    const events = Array.from({ length: total }, (_, i) => ({
      oid: i % 3 === 0 ? 'p' : 'o', sid: 's', event_type: 'T', event_time: i, event_id: `e${i}`, json: '{}', stream: i % 5 === 0 ? 'audit' : null,
    }));
    await store.appendEvents(events, []);
    const direct = new Database(file, { readonly: true });
    const exact = (oid: string, stream: string, after: number, upTo: number): number =>
      (direct.prepare(`SELECT count(*) AS n FROM events WHERE oid = ? AND ${stream === 'event' ? 'stream IS NULL' : 'stream = ?'} AND seq > ? AND seq <= ?`)
        .get(...(stream === 'event' ? [oid, after, upTo] : [oid, stream, after, upTo])) as { n: number }).n;
    // Turns of the event loop taken while counting.
    let turns = 0;
    let counting = true;
    const spin = (): void => {
      turns++;
      if (counting) setImmediate(spin);
    };
    setImmediate(spin);
    const whole = await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e12 });
    counting = false;
    expect(whole).toBe(exact('o', 'event', 0, total));
    expect(turns).toBeGreaterThanOrEqual(2);
    for (const [oid, stream, after, upTo] of [['o', 'audit', 17, total - 5], ['p', 'event', COUNT_SLICE_POSITIONS - 1, COUNT_SLICE_POSITIONS + 1], ['p', 'audit', 3, 3], ['o', 'event', total, total + 10]] as const) {
      expect(await store.countLog({ oid, stream, afterSeq: after, upToSeq: upTo }), `${oid} ${stream} (${after}, ${upTo}]`).toBe(exact(oid, stream, after, upTo));
    }
    direct.close();
    await store.close();
  });

  it('a dead append thread costs the group it held, never an acknowledged one, and later commits run in-thread', async () => {
    const { store } = await migratedStore('full');
    const one = (id: string, seq: number) => store.appendEvents([{ oid: 'o', sid: 's', event_type: 'T', event_time: seq, event_id: id, json: '{}' }], [{ sid: 's', stream_id: 'A', seq }]);
    await one('e1', 1);
    const thread = (store as unknown as { appender: AppendThread }).appender;
    expect(thread).toBeInstanceOf(AppendThread);
    // While the thread runs it alone checkpoints the WAL (a checkpoint here would stop the event loop).
    const checkpointPages = (): unknown => (store as unknown as { db: { pragma(s: string, o: { simple: true }): unknown } }).db.pragma('wal_autocheckpoint', { simple: true });
    expect(checkpointPages()).toBe(0);
    // A large group, so the thread dies inside its transaction.
    const big = Array.from({ length: 50_000 }, (_, i) => ({ oid: 'o', sid: 's', event_type: 'T', event_time: 2, event_id: `b${i}`, json: JSON.stringify({ pad: 'x'.repeat(300) }) }));
    const held = store.appendEvents(big, [{ sid: 's', stream_id: 'A', seq: 2 }]);
    await new Promise((r) => setImmediate(r));
    await thread.kill();
    await expect(held).rejects.toThrow(/append thread/);
    // The next group is committed on the store's own connection, and nothing the thread left holds it up.
    await one('e3', 3);
    expect(checkpointPages()).toBe(WAL_AUTOCHECKPOINT_PAGES);
    expect(await store.getSequenceMark('s')).toEqual({ sid: 's', stream_id: 'A', seq: 3 });
    // The rejected group is not half there: all of it or (rolled back) none of it.
    expect([2, 50_002]).toContain(await store.countLog({ oid: 'o', stream: 'event', afterSeq: 0, upToSeq: 1e9 }));
    await store.close();
  });

  it('rejects appends after close instead of losing them', async () => {
    const store = SqliteStore.open({ path: path.join(tempDir(), 'picket.db'), synchronous: 'normal' });
    await store.migrate();
    await store.appendEvents([{ oid: 'o', sid: 's', event_type: 'T', event_time: 1, event_id: 'e', json: '{}' }], []);
    await store.close();
    await expect(store.appendEvents([{ oid: 'o', sid: 's', event_type: 'T', event_time: 1, event_id: 'f', json: '{}' }], [])).rejects.toThrow();
  });

  it('opens in WAL mode with the requested synchronous level, foreign keys and a busy timeout', () => {
    const dir = tempDir();
    for (const [mode, level] of [['full', 2], ['normal', 1]] as const) {
      const db = openDatabase(path.join(dir, `${mode}.db`), mode);
      try {
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
        expect(db.pragma('synchronous', { simple: true })).toBe(level);
        expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
        expect(db.pragma('busy_timeout', { simple: true })).toBeGreaterThan(0);
      } finally {
        db.close();
      }
    }
  });

  it('keeps the data file in WAL mode and its data across close and reopen', async () => {
    const file = path.join(tempDir(), 'picket.db');
    const first = SqliteStore.open({ path: file, synchronous: 'normal' });
    expect(first.description).toBe(`sqlite:${file}`);
    await first.migrate();
    await first.createOrg({ oid: 'o1', name: 'one', quota: 3, created: 1 });
    await first.appendEvents([{ oid: 'o1', sid: 's1', event_type: 'T', event_time: 5, event_id: 'e1', json: '{"x":1}' }], [{ sid: 's1', stream_id: 'A', seq: 4 }]);
    expect(existsSync(`${file}-wal`)).toBe(true);
    await first.close();
    await expect(first.ping()).rejects.toThrow();

    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();

    const second = SqliteStore.open({ path: file, synchronous: 'full' });
    await second.migrate();
    expect(await second.getOrg('o1')).toEqual({ oid: 'o1', name: 'one', quota: 3, created: 1 });
    expect((await second.queryTimeline({ oid: 'o1', sid: 's1', start: 0, end: 10, limit: 5 })).events).toEqual(['{"x":1}']);
    expect(await second.getSequenceMark('s1')).toEqual({ sid: 's1', stream_id: 'A', seq: 4 });
    await second.close();
  });

  it('lets two stores share one file (a second process, a CLI reading it)', async () => {
    const file = path.join(tempDir(), 'picket.db');
    const a = SqliteStore.open({ path: file, synchronous: 'full' });
    const b = SqliteStore.open({ path: file, synchronous: 'full' });
    await a.migrate();
    await b.migrate();
    await a.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 });
    expect(await b.getOrg('o')).not.toBeNull();
    await expect(b.createOrg({ oid: 'o', name: 'n', quota: null, created: 1 })).rejects.toMatchObject({ code: 'CONFLICT' });
    await a.close();
    await b.close();
  });

  describe('migrations', () => {
    const versions = (db: Database.Database): number[] =>
      db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all() as number[];

    it('are versioned and applied once: migrating again and reopening are no-ops', async () => {
      const file = path.join(tempDir(), 'picket.db');
      const store = SqliteStore.open({ path: file, synchronous: 'full' });
      await store.migrate();
      await store.migrate();
      await store.close();
      const again = SqliteStore.open({ path: file, synchronous: 'full' });
      await again.migrate();
      await again.close();

      const db = new Database(file);
      try {
        expect(versions(db)).toEqual(MIGRATIONS.map((m) => m.version));
        expect(schemaVersion(db)).toBe(MIGRATIONS.at(-1)!.version);
        expect(migrate(db)).toEqual([]);
        const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
        expect(tables).toEqual(['api_keys', 'artifact_exports', 'artifact_parts', 'artifacts', 'cloud_adapters', 'events', 'ingestion_keys', 'installation_keys', 'org_errors', 'orgs', 'output_cursors', 'outputs', 'schedule_marks', 'schema_migrations', 'sensor_notices', 'sensor_tags', 'sensors', 'sequence_marks', 'tasks', 'usage_counters', 'usage_periods']);
      } finally {
        db.close();
      }
    });

    it('applies only the new migration when one is added', () => {
      const db = new Database(path.join(tempDir(), 'm.db'));
      try {
        expect(migrate(db)).toEqual(MIGRATIONS.map((m) => m.version));
        const next: Migration = { version: MIGRATIONS.at(-1)!.version + 1, name: 'add widgets', sql: 'CREATE TABLE widgets (id INTEGER PRIMARY KEY)' };
        expect(migrate(db, [...MIGRATIONS, next])).toEqual([next.version]);
        expect(migrate(db, [...MIGRATIONS, next])).toEqual([]);
        expect(versions(db)).toEqual([...MIGRATIONS, next].map((m) => m.version));
      } finally {
        db.close();
      }
    });

    it('rolls a failing migration back completely', () => {
      const db = new Database(path.join(tempDir(), 'm.db'));
      try {
        migrate(db);
        const broken: Migration = { version: 1000, name: 'broken', sql: 'CREATE TABLE half (id INTEGER); INSERT INTO no_such_table VALUES (1);' };
        expect(() => migrate(db, [...MIGRATIONS, broken])).toThrow(/no_such_table/);
        expect(schemaVersion(db)).toBe(MIGRATIONS.at(-1)!.version);
        expect(db.prepare("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half'").pluck().get()).toBe(0);
      } finally {
        db.close();
      }
    });

    it('refuses a database migrated by a newer version, changing nothing', async () => {
      const file = path.join(tempDir(), 'picket.db');
      const store = SqliteStore.open({ path: file, synchronous: 'full' });
      await store.migrate();
      await store.close();
      const db = new Database(file);
      db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(9999, 'from the future', 1);
      db.close();

      const newer = SqliteStore.open({ path: file, synchronous: 'full' });
      await expect(newer.migrate()).rejects.toBeInstanceOf(SchemaTooNewError);
      await expect(newer.migrate()).rejects.toThrow(new RegExp(`schema version 9999 is newer than this Picket knows \\(up to ${MIGRATIONS.at(-1)!.version}\\)`));
      await newer.close();
    });

    it('rejects a migration list out of order', () => {
      const db = new Database(':memory:');
      try {
        expect(() => migrate(db, [{ version: 2, name: 'b', sql: '' }, { version: 1, name: 'a', sql: '' }])).toThrow(/increasing/);
      } finally {
        db.close();
      }
    });
  });

  describe('timeline query plan', () => {
    const shapes = [false, true].flatMap((eventType) =>
      [true, false].flatMap((forward) => [false, true].map((cursor) => ({ eventType, forward, cursor }))),
    );

    it.each(shapes)('is one index range scan, sorting only the rows tied on event_time: %o', async (shape) => {
      const file = path.join(tempDir(), 'plan.db');
      const store = SqliteStore.open({ path: file, synchronous: 'normal' });
      await store.migrate();
      // Some data and statistics, so the plan is the one a real database gets.
      const events = Array.from({ length: 2000 }, (_, i) => ({
        oid: 'o', sid: `s${i % 20}`, event_type: `T${i % 7}`, event_time: 1000 + Math.floor(i / 3), event_id: `e${i}`, json: '{}',
      }));
      await store.appendEvents(events, []);
      await store.close();

      const db = new Database(file);
      try {
        db.exec('ANALYZE');
        const sql = timelineSql(shape);
        const params = timelineParams(
          { oid: 'o', sid: 's1', start: 0, end: 5000, limit: 100, ...(shape.eventType ? { eventType: 'T1' } : {}) },
          shape.cursor ? { time: 1200, seq: 600, forward: shape.forward } : null,
          101,
        );
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
        // One range scan; the only sort is of rows tied on event_time (the last ORDER BY term), never a full one.
        expect(plan).toEqual(['SEARCH events USING INDEX events_by_sensor_time_type (sid=? AND event_time>? AND event_time<?)', 'USE TEMP B-TREE FOR LAST TERM OF ORDER BY']);
        expect(plan.join('\n')).not.toMatch(/SCAN/);
        // And it returns the rows of the range, of the type asked, in (event_time, seq) order.
        const rows = db.prepare(sql).all(...params) as Array<{ seq: number; event_time: number }>;
        expect(rows.length).toBeGreaterThan(0);
        const order = (a: { seq: number; event_time: number }, b: { seq: number; event_time: number }) => (a.event_time - b.event_time || a.seq - b.seq) * (shape.forward ? 1 : -1);
        expect(rows).toEqual([...rows].sort(order));
      } finally {
        db.close();
      }
    });
  });

  describe('platform stream query plan', () => {
    it.each([true, false].flatMap((forward) => [false, true].map((cursor) => ({ forward, cursor }))))(
      'is one range scan of the partial stream index, which telemetry never enters: %o',
      async (shape) => {
        const file = path.join(tempDir(), 'stream-plan.db');
        const store = SqliteStore.open({ path: file, synchronous: 'normal' });
        await store.migrate();
        const events = Array.from({ length: 2000 }, (_, i) => ({
          oid: 'o', sid: `s${i % 20}`, event_type: i % 10 === 0 ? 'enrollment' : 'NEW_PROCESS', event_time: 1000 + i,
          event_id: `e${i}`, json: '{}', stream: i % 10 === 0 ? 'deployment' : 'event',
        }));
        await store.appendEvents(events, []);
        await store.close();
        const db = new Database(file);
        try {
          db.exec('ANALYZE');
          const sql = streamSql(shape);
          const params = streamParams({ oid: 'o', stream: 'deployment', start: 0, end: 5000, limit: 100 }, shape.cursor ? { time: 1200, seq: 201, forward: shape.forward } : null, 101);
          const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
          expect(plan).toEqual(['SEARCH events USING INDEX events_by_org_stream_time (oid=? AND stream=? AND event_time>? AND event_time<?)']);
          expect(db.prepare('SELECT COUNT(*) FROM events INDEXED BY events_by_org_stream_time WHERE stream IS NOT NULL').pluck().get()).toBe(200);
        } finally {
          db.close();
        }
      },
    );
  });

  describe('crash durability', () => {
    const CHILD = path.join(ROOT, 'test/fixtures/store-crash-child.mjs');
    // The child runs the compiled store, exactly as `picket serve` does. `npm test` builds first;
    // PICKET_TEST_DIST points at another build of src/ (e.g. `tsc -p tsconfig.build.json --outDir`).
    const DIST = process.env.PICKET_TEST_DIST ? path.resolve(process.env.PICKET_TEST_DIST) : path.join(ROOT, 'dist');

    /** Fails (never skips) when the build of the store is missing or older than its sources. */
    function compiledStore(): string {
      const srcDir = path.join(ROOT, 'src/store');
      const stale: string[] = [];
      const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          const file = path.join(dir, entry.name);
          if (entry.isDirectory()) walk(file);
          else if (entry.name.endsWith('.ts')) {
            const built = path.join(DIST, path.relative(path.join(ROOT, 'src'), file)).replace(/\.ts$/, '.js');
            if (!existsSync(built) || statSync(built).mtimeMs < statSync(file).mtimeMs) stale.push(path.relative(ROOT, file));
          }
        }
      };
      walk(srcDir);
      if (stale.length > 0) {
        throw new Error(`the build in ${DIST} is missing or older than ${stale.join(', ')}: run \`npm run build\` first (npm test does)`);
      }
      return path.join(DIST, 'store/sqlite/sqlite-store.js');
    }

    it.each(['full', 'normal'] as const)('keeps every acknowledged batch, whole, after SIGKILL (synchronous=%s)', async (mode) => {
      const modulePath = compiledStore();
      const file = path.join(tempDir(), 'crash.db');
      const oid = randomUUID();
      const sid = randomUUID();
      const stream = randomUUID();
      const BATCH = 200;
      const child = new ManagedProcess(
        spawn(process.execPath, [CHILD, modulePath, file, mode, oid, sid, stream, String(BATCH)], { stdio: ['ignore', 'pipe', 'pipe'] }),
      );
      const acked = (): number => Number(child.stdout.at(-1) ?? 0);
      try {
        await waitFor(() => acked() >= 40 || !child.running, { timeoutMs: 20_000, message: '40 acknowledged batches' });
        expect(child.running, `child exited early: ${child.stderr.join('\n')}`).toBe(true);
      } finally {
        child.kill('SIGKILL');
      }
      const exit = await child.exited;
      expect(exit.signal).toBe('SIGKILL');
      const lastAcked = acked();
      expect(child.stdout.map(Number)).toEqual(Array.from({ length: child.stdout.length }, (_, i) => i + 1));

      const store = SqliteStore.open({ path: file, synchronous: 'full' });
      try {
        await store.migrate();
        const mark = await store.getSequenceMark(sid);
        expect(mark?.stream_id).toBe(stream);
        // Every acknowledged batch is stored; the one being committed at the kill may be too.
        expect(mark!.seq).toBeGreaterThanOrEqual(lastAcked);
        const perBatch = new Map<number, number>();
        let cursor: string | undefined;
        do {
          const page = await store.queryTimeline({ oid, sid, start: 0, end: Number.MAX_SAFE_INTEGER, limit: 5000, cursor });
          for (const json of page.events) {
            const n = (JSON.parse(json) as { event: { n: number } }).event.n;
            perBatch.set(n, (perBatch.get(n) ?? 0) + 1);
          }
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        // The mark and the events commit together: batches 1..mark, each complete, nothing beyond.
        expect([...perBatch.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: mark!.seq }, (_, i) => i + 1));
        expect([...perBatch.values()].every((count) => count === BATCH)).toBe(true);
      } finally {
        await store.close();
      }
    });
  });
});
