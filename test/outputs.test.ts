// Outputs end to end on a real server with the file module: the API, delivery in order from the durable
// cursor, a destination that fails and comes back, a restart, the "__" rule, test sends and errors.
import { mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { runCli } from './harness/processes.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

function lines(file: string): Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { routing: Record<string, unknown>; event: Record<string, unknown> });
}

function batch(from: number, n: number, extra: Partial<SensorEvent> = {}): SensorEvent[] {
  return Array.from({ length: n }, (_, i) => ({ event_type: 'OUT_TEST', event_time: Date.now(), event: { n: from + i }, ...extra }));
}

describe('outputs (file module, real server)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function server(dataDir?: string, port?: number): Promise<TestServer> {
    const s = await startTestServer({ ...(dataDir ? { dataDir } : {}), ...(port ? { port } : {}) });
    // Cleanups run last first: the directory goes only after the server has stopped writing into it
    // (a sensor's DISCONNECTED still reaches the file output while the server runs).
    if (!dataDir) cleanups.push(() => rmSync(s.dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }));
    cleanups.push(() => s.close({ keepData: true }));
    return s;
  }

  async function sensor(s: TestServer, identity?: { sid: string; secret: string }, streamId = crypto.randomUUID()) {
    const client = new ProtocolClient(s.url, 'json');
    await client.hello(identity ?? { installation_key: s.installationKey }, { streamId });
    const welcome = await client.welcome();
    cleanups.push(() => client.close());
    const given = welcome.identity ?? identity!;
    return { client, identity: { sid: given.sid, secret: given.secret }, streamId };
  }

  it('is managed through the API: create (JSON or form), list with status, validate, test-send, delete', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    const created = await api<Record<string, unknown>>('POST', `/v1/outputs/${s.oid}`, { name: 'archive', module: 'file', type: 'event', dest_path: 'archive.jsonl', is_no_routing: 'true' });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ name: 'archive', module: 'file', for: 'event', dest_path: 'archive.jsonl', is_no_routing: true, status: { state: 'running' } });

    const form = await fetch(`${s.url}/v1/outputs/${s.oid}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'deploy', module: 'file', type: 'deployment', dest_path: 'deploy.jsonl', is_flat: 'false' }).toString(),
    });
    expect(form.status).toBe(200);

    const list = await api<Record<string, Record<string, Record<string, unknown>>>>('GET', `/v1/outputs/${s.oid}`);
    expect(Object.keys(list.body[s.oid]!).sort()).toEqual(['archive', 'deploy']);
    expect(list.body[s.oid]!.deploy).toMatchObject({ for: 'deployment', status: { state: 'running', failures: 0 } });

    const bad = await api<{ error: string; field: string }>('POST', `/v1/outputs/${s.oid}`, { name: 'x', module: 'file', type: 'event' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ field: 'dest_path', error: expect.stringContaining('"dest_path" is required') });
    const escape = await api<{ error: string }>('POST', `/v1/outputs/${s.oid}`, { name: 'x', module: 'file', type: 'event', dest_path: '../../etc/evil' });
    expect(escape.status).toBe(400);
    expect(escape.body.error).toContain('inside <data dir>/outputs/');

    const test = await api<{ ok: boolean }>('POST', `/v1/outputs/${s.oid}/archive/test`);
    expect(test.body).toEqual({ ok: true });
    const written = lines(path.join(s.dataDir, 'outputs', 'archive.jsonl'));
    expect(written.at(-1)).toMatchObject({ routing: { event_type: 'picket_test' } });

    expect((await api('DELETE', `/v1/outputs/${s.oid}`, { name: 'deploy' })).status).toBe(200);
    const missing = await api('DELETE', `/v1/outputs/${s.oid}?name=deploy`);
    expect(missing, JSON.stringify(missing.body)).toMatchObject({ status: 404 });
    const other = await api('GET', `/v1/outputs/${crypto.randomUUID()}`);
    expect(other.status).toBe(403);
  });

  it('picket outputs add/list/test/errors/delete drive the same API', async () => {
    const s = await server();
    const conn = ['--url', s.url, '--api-key', s.apiKey];
    const add = await runCli(['outputs', 'add', 'cli-out', '--module', 'file', '--stream', 'event', '--set', 'dest_path=cli.jsonl', '--set', 'event_white_list=A', '--set', 'event_white_list=B', '--json', ...conn]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ name: 'cli-out', module: 'file', for: 'event', event_white_list: 'A\nB' });
    const list = await runCli(['outputs', 'list', '--json', ...conn]);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ name: 'cli-out', status: expect.objectContaining({ state: 'running' }) })]);
    const table = await runCli(['outputs', 'list', ...conn]);
    expect(table.stdout).toMatch(/cli-out\s+file\s+event\s+running/);
    const test = await runCli(['outputs', 'test', 'cli-out', ...conn]);
    expect(test.stdout).toContain('test record delivered');
    const bad = await runCli(['outputs', 'add', 'x', '--module', 'file', '--stream', 'event', '--set', 'nonsense', ...conn]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--set expects field=value');
    const errors = await runCli(['outputs', 'errors', '--json', ...conn]);
    expect(JSON.parse(errors.stdout)).toEqual([]);
    expect((await runCli(['outputs', 'delete', 'cli-out', ...conn])).stdout).toContain('deleted');
    expect(JSON.parse((await runCli(['outputs', 'list', '--json', ...conn])).stdout)).toEqual([]);
  }, 90_000); // one Node process per CLI call: slow on a loaded 2-core machine

  it('delivers each stream\'s events in order, shaped, without "__" investigations', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'all', module: 'file', type: 'event', dest_path: 'all.jsonl' });
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'deploy', module: 'file', type: 'deployment', dest_path: 'deploy.jsonl' });
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'flat', module: 'file', type: 'event', dest_path: 'flat.jsonl', is_flat: true, event_white_list: ['OUT_TEST'] });
    const { client } = await sensor(s);
    client.sendEvents(1, batch(0, 300));
    client.sendEvents(2, batch(300, 5, { investigation_id: '__isolation' }));
    client.sendEvents(3, batch(305, 200, { investigation_id: 'case-9' }));
    await client.waitForAck(3);
    const all = path.join(s.dataDir, 'outputs', 'all.jsonl');
    await waitFor(() => lines(all).filter((l) => l.routing.event_type === 'OUT_TEST').length === 500, { message: '500 events in the file' });
    const out = lines(all).filter((l) => l.routing.event_type === 'OUT_TEST');
    expect(out.map((l) => l.event.n)).toEqual([...Array.from({ length: 300 }, (_, i) => i), ...Array.from({ length: 200 }, (_, i) => 305 + i)]);
    expect(lines(all).map((l) => l.routing.event_type)).toContain('CONNECTED');
    expect(lines(all).some((l) => String(l.routing.investigation_id ?? '').startsWith('__'))).toBe(false);
    await waitFor(() => lines(path.join(s.dataDir, 'outputs', 'flat.jsonl')).length === 500);
    expect(lines(path.join(s.dataDir, 'outputs', 'flat.jsonl'))[0]).toMatchObject({ 'routing/event_type': 'OUT_TEST', 'event/n': 0 });
    await waitFor(() => lines(path.join(s.dataDir, 'outputs', 'deploy.jsonl')).length === 1, { message: 'enrollment in the deployment output' });
    expect(lines(path.join(s.dataDir, 'outputs', 'deploy.jsonl'))[0]!.routing.event_type).toBe('enrollment');
  });

  it('event_black_list: the listed types never reach the output, everything else does, in order', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    expect((await api('POST', `/v1/outputs/${s.oid}`, { name: 'noisy', module: 'file', type: 'event', dest_path: 'noisy.jsonl', event_black_list: 'OUT_DROP\nOUT_ALSO_DROP' })).status).toBe(200);
    const { client } = await sensor(s);
    client.sendEvents(1, batch(0, 20));
    client.sendEvents(2, batch(20, 10, { event_type: 'OUT_DROP' }));
    client.sendEvents(3, batch(30, 5, { event_type: 'OUT_ALSO_DROP' }));
    client.sendEvents(4, batch(35, 20));
    client.sendEvents(5, batch(55, 1, { event_type: 'OUT_LAST' }));
    await client.waitForAck(5);
    const file = path.join(s.dataDir, 'outputs', 'noisy.jsonl');
    // Delivery is in log order: once the last event is there, everything before it was filtered.
    await waitFor(() => lines(file).some((l) => l.routing.event_type === 'OUT_LAST'), { message: 'the last event in the file' });
    const types = lines(file).map((l) => l.routing.event_type);
    expect(types).not.toContain('OUT_DROP');
    expect(types).not.toContain('OUT_ALSO_DROP');
    expect(types).toContain('CONNECTED');
    expect(lines(file).filter((l) => l.routing.event_type === 'OUT_TEST').map((l) => l.event.n)).toEqual([...Array.from({ length: 20 }, (_, i) => i), ...Array.from({ length: 20 }, (_, i) => 35 + i)]);
  });

  it('sample_rate: exactly the events whose log position is a multiple of N, in order', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'every3', module: 'file', type: 'event', dest_path: 'every3.jsonl', event_white_list: 'OUT_TEST', sample_rate: 3 });
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'every1', module: 'file', type: 'event', dest_path: 'every1.jsonl', event_white_list: 'OUT_TEST' });
    const { client } = await sensor(s);
    for (let b = 0; b < 3; b++) client.sendEvents(b + 1, batch(b * 100, 100));
    await client.waitForAck(3);
    await waitFor(() => lines(path.join(s.dataDir, 'outputs', 'every1.jsonl')).length === 300, { message: 'all 300 in the unsampled output' });
    // The log positions as stored: the sampled output must send exactly those at multiples of 3.
    const stored = (await s.server.store.readLog({ oid: s.oid, stream: 'event', afterSeq: 0, limit: 10_000 })).filter((r) => r.event_type === 'OUT_TEST');
    expect(stored).toHaveLength(300);
    const expected = stored.filter((r) => r.seq % 3 === 0).map((r) => (JSON.parse(r.json) as { event: { n: number } }).event.n);
    expect(expected.length).toBeGreaterThanOrEqual(99);
    expect(expected.length).toBeLessThanOrEqual(101);
    const sampled = path.join(s.dataDir, 'outputs', 'every3.jsonl');
    await waitFor(() => lines(sampled).length >= expected.length, { message: `${expected.length} sampled events` });
    // The unsampled output has caught up past every event, so the sampled one has nothing more coming once its cursor is there too.
    const last = stored.at(-1)!.seq;
    await waitFor(async () => (await api<Record<string, Record<string, { status: { cursor: number } }>>>('GET', `/v1/outputs/${s.oid}`)).body[s.oid]!.every3!.status.cursor >= last, { message: 'the sampled output read to the end' });
    expect(lines(sampled).map((l) => l.event.n)).toEqual(expected);
  });

  it('is_prefix_data: each record is the stored envelope wrapped under its event type', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'plain', module: 'file', type: 'event', dest_path: 'plain.jsonl', event_white_list: 'OUT_TEST,OUT_OTHER' });
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'prefixed', module: 'file', type: 'event', dest_path: 'prefixed.jsonl', event_white_list: 'OUT_TEST,OUT_OTHER', is_prefix_data: 'true' });
    const { client } = await sensor(s);
    client.sendEvents(1, [...batch(0, 3), ...batch(3, 2, { event_type: 'OUT_OTHER' })]);
    await client.waitForAck(1);
    const plain = path.join(s.dataDir, 'outputs', 'plain.jsonl');
    const prefixed = path.join(s.dataDir, 'outputs', 'prefixed.jsonl');
    await waitFor(() => lines(plain).length === 5 && lines(prefixed).length === 5, { message: 'five records in both files' });
    const wrapped = lines(prefixed) as unknown as Array<Record<string, unknown>>;
    expect(wrapped.map((r) => Object.keys(r))).toEqual([['OUT_TEST'], ['OUT_TEST'], ['OUT_TEST'], ['OUT_OTHER'], ['OUT_OTHER']]);
    expect(wrapped.map((r, i) => r[lines(plain)[i]!.routing.event_type as string])).toEqual(lines(plain));
  });

  it('two sensors interleaved in the log: each sensor\'s events arrive in its own order, none lost or doubled', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'both', module: 'file', type: 'event', dest_path: 'both.jsonl', event_white_list: 'OUT_TEST' });
    const a = await sensor(s);
    const b = await sensor(s);
    const sidA = a.identity.sid;
    const sidB = b.identity.sid;
    // Alternating acknowledged batches: the log interleaves A, B, A, B, ...
    let seq = 0;
    for (let round = 0; round < 5; round++) {
      seq++;
      a.client.sendEvents(seq, batch(round * 20, 20));
      await a.client.waitForAck(seq);
      b.client.sendEvents(seq, batch(round * 20, 20));
      await b.client.waitForAck(seq);
    }
    // Then both at once, without waiting: their batches land in whatever order the commits take them.
    for (let round = 5; round < 15; round++) {
      a.client.sendEvents(round + 1, batch(round * 20, 20));
      b.client.sendEvents(round + 1, batch(round * 20, 20));
    }
    await a.client.waitForAck(15);
    await b.client.waitForAck(15);
    const file = path.join(s.dataDir, 'outputs', 'both.jsonl');
    await waitFor(() => lines(file).length >= 600, { message: '600 events in the file' });
    const out = lines(file);
    expect(out).toHaveLength(600);
    const expected = Array.from({ length: 300 }, (_, i) => i);
    expect(out.filter((l) => l.routing.sid === sidA).map((l) => l.event.n)).toEqual(expected);
    expect(out.filter((l) => l.routing.sid === sidB).map((l) => l.event.n)).toEqual(expected);
    // The file really interleaves the two sensors (at least the five alternating rounds).
    const switches = out.slice(1).filter((l, i) => l.routing.sid !== out[i]!.routing.sid).length;
    expect(switches).toBeGreaterThanOrEqual(9);
  });

  it('a failing destination is retried until it works, its error readable meanwhile; nothing lost, nothing twice, across a restart', async () => {
    let s = await server();
    const { dataDir, port } = s;
    const api = () => apiClient(s.url, s.apiKey);
    // The destination "fails": its path is a directory, so every append is refused.
    const file = path.join(dataDir, 'outputs', 'flaky.jsonl');
    mkdirSync(file, { recursive: true });
    await api()('POST', `/v1/outputs/${s.oid}`, { name: 'flaky', module: 'file', type: 'event', dest_path: 'flaky.jsonl', event_white_list: 'OUT_TEST' });
    const first = await sensor(s);
    first.client.sendEvents(1, batch(0, 100));
    await first.client.waitForAck(1);
    await waitFor(async () => (await api()<{ errors: Array<{ component: string; error: string }> }>('GET', `/v1/errors/${s.oid}`)).body.errors.length === 1, { message: 'the error is recorded' });
    const errors = (await api()<{ errors: Array<{ component: string; error: string }> }>('GET', `/v1/errors/${s.oid}`)).body.errors;
    expect(errors[0]).toMatchObject({ component: 'outputs/flaky', error: expect.stringContaining('EISDIR') });
    const listed = await api()<Record<string, Record<string, { status: { state: string; failures: number } }>>>('GET', `/v1/outputs/${s.oid}`);
    expect(listed.body[s.oid]!.flaky!.status.state).toBe('retrying');

    // Restart during the outage; more events arrive after it.
    first.client.close();
    await s.close({ keepData: true });
    s = await server(dataDir, port);
    const again = await sensor(s, first.identity, first.streamId);
    again.client.sendEvents(2, batch(100, 100));
    await again.client.waitForAck(2);

    // The destination comes back.
    rmSync(file, { recursive: true });
    await waitFor(() => lines(file).length === 200, { timeoutMs: 15_000, message: 'all 200 delivered after recovery' });
    expect(lines(file).map((l) => l.event.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await waitFor(async () => (await api()<{ errors: unknown[] }>('GET', `/v1/errors/${s.oid}`)).body.errors.length === 0, { message: 'error cleared' });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/picket_output_events_sent_total\{module="file"\} 200/);
    // The first 100 were committed before the restart: read back from the database, not from memory.
    expect(Number(/picket_output_log_rows_read_total\{source="store"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(100);
  });

  it('drop_oldest skips ahead past the queue limit and counts exactly the events it skipped', async () => {
    const s = await startTestServer({ outputQueueLimit: 50, outputOverflow: 'drop_oldest', outputPauseAfter: 1, outputPauseS: 0.3 });
    cleanups.push(() => s.close());
    const api = apiClient(s.url, s.apiKey);
    const file = path.join(s.dataDir, 'outputs', 'small.jsonl');
    mkdirSync(file, { recursive: true });
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'small', module: 'file', type: 'event', dest_path: 'small.jsonl', event_white_list: 'OUT_TEST' });
    const { client } = await sensor(s);
    client.sendEvents(1, batch(0, 200));
    await client.waitForAck(1);
    await waitFor(async () => /\d+ undelivered events skipped|skipped \d+ undelivered events/.test(JSON.stringify((await api('GET', `/v1/errors/${s.oid}`)).body)), { message: 'the skip is reported' });
    rmSync(file, { recursive: true });
    await waitFor(() => lines(file).length > 0, { message: 'delivery resumes' });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const dropped = Number(/picket_output_dropped_total\{oid="[^"]+",output="small"\} (\d+)/.exec(metrics)![1]);
    expect(dropped).toBeGreaterThan(0);
    await waitFor(() => lines(file).length + dropped === 200, { message: 'delivered + dropped = sent' });
    const delivered = lines(file).map((l) => l.event.n as number);
    expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => 200 - delivered.length + i));
  });
});
