// Live streams (NDJSON and WebSocket) and the audit stream, on a real server.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { Metrics } from '../src/observability/metrics.js';
import { LiveStreamHub } from '../src/sinks/live/live-stream-hub.js';
import type { SensorEvent } from '../src/protocol/messages.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const ALL = { event_white_list: [], event_black_list: [], sid: null, tag: null, inv_id: null, sample_rate: 1 };

function events(n: number, extra: Partial<SensorEvent> = {}, type = 'LIVE_TEST'): SensorEvent[] {
  return Array.from({ length: n }, (_, i) => ({ event_type: type, event_time: Date.now(), event: { n: i }, ...extra }));
}

/** Reads an NDJSON response line by line into `into` until aborted. */
async function readLines(res: Response, into: Array<Record<string, unknown>>): Promise<void> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        into.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    }
  } catch {
    // aborted
  }
}

describe('live streams and the audit stream', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function server(): Promise<TestServer> {
    const s = await startTestServer({ liveKeepaliveS: 0.2 });
    cleanups.push(() => s.close());
    return s;
  }

  async function sensor(s: TestServer) {
    const client = new ProtocolClient(s.url, 'json');
    await client.hello({ installation_key: s.installationKey }, { streamId: crypto.randomUUID() });
    const welcome = await client.welcome();
    cleanups.push(() => client.close());
    return { client, sid: welcome.sid };
  }

  it('NDJSON: connected, then only matching events (never "__" investigations), and keepalives', async () => {
    const s = await server();
    const a = await sensor(s);
    const b = await sensor(s);
    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    const res = await fetch(`${s.url}/v1/stream/${s.oid}`, {
      method: 'POST', signal: abort.signal,
      headers: { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ type: 'event', sid: a.sid, event_type: 'LIVE_TEST' }).toString(),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const lines: Array<Record<string, unknown>> = [];
    void readLines(res, lines);
    await waitFor(() => lines.length >= 1, { message: 'connected' });
    expect(lines[0]).toEqual({ __trace: 'connected' });
    a.client.sendEvents(1, events(3));
    a.client.sendEvents(2, events(2, { investigation_id: '__isolation' }));
    a.client.sendEvents(3, events(2, {}, 'OTHER_TYPE'));
    b.client.sendEvents(1, events(4));
    a.client.sendEvents(4, events(1, { investigation_id: 'case-1' }));
    await a.client.waitForAck(4);
    await b.client.waitForAck(1);
    await waitFor(() => lines.filter((l) => l.routing).length === 4, { message: 'four matching events' });
    await waitFor(() => lines.some((l) => l.__trace === 'keepalive'), { message: 'a keepalive' });
    const evs = lines.filter((l) => l.routing) as Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }>;
    expect(evs.map((e) => [e.routing.sid, e.routing.event_type, e.event.n])).toEqual([[a.sid, 'LIVE_TEST', 0], [a.sid, 'LIVE_TEST', 1], [a.sid, 'LIVE_TEST', 2], [a.sid, 'LIVE_TEST', 0]]);
    expect(evs.some((e) => String(e.routing.investigation_id ?? '').startsWith('__'))).toBe(false);
    const bad = await fetch(`${s.url}/v1/stream/${s.oid}?type=schedule`, { method: 'POST', headers: { authorization: `Bearer ${s.apiKey}` } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('unknown stream');
  });

  it('WebSocket: subscribe with a first message; a bad key is refused', async () => {
    const s = await server();
    const url = `${s.url.replace(/^http/, 'ws')}/v1/stream/ws`;
    const ws = new WebSocket(url);
    cleanups.push(() => ws.close());
    const got: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await new Promise((r) => ws.on('open', r));
    ws.send(JSON.stringify({ oid: s.oid, api_key: s.apiKey, type: 'deployment' }));
    await waitFor(() => got.length >= 1);
    expect(got[0]).toEqual({ __trace: 'connected' });
    const { sid } = await sensor(s);
    await waitFor(() => got.some((m) => (m.routing as Record<string, unknown> | undefined)?.event_type === 'enrollment'), { message: 'enrollment on the deployment stream' });
    expect(got.find((m) => m.routing)!.routing).toMatchObject({ sid, event_type: 'enrollment' });

    const bad = new WebSocket(url);
    const badMessages: string[] = [];
    bad.on('message', (d) => badMessages.push(d.toString()));
    const closed = new Promise<number>((r) => bad.on('close', (code) => r(code)));
    await new Promise((r) => bad.on('open', r));
    bad.send(JSON.stringify({ oid: s.oid, api_key: 'nope.nope' }));
    expect(await closed).toBe(4003);
    expect(badMessages[0]).toContain('invalid or missing api_key');
  });

  it('a client that reads too slowly loses the oldest lines and is told how many', () => {
    const bus = new MemoryBus();
    const metrics = new Metrics({ defaultMetrics: false });
    const hub = new LiveStreamHub(bus, metrics, { keepaliveMs: 60_000, maxQueuedLines: 10 });
    const written: string[] = [];
    let accept = true;
    const sub = hub.subscribe({ oid: 'o', stream: 'event', filters: ALL }, { write: (l) => (written.push(l), accept), close: () => undefined });
    expect(written).toEqual(['{"__trace":"connected"}']);
    accept = false;
    bus.publish(Array.from({ length: 26 }, (_, n) => ({ stream: 'event' as const, oid: 'o', sid: 's', event_type: 'X', json: JSON.stringify({ routing: { event_type: 'X' }, event: { n } }) })));
    // The first event went out (the sink said "slow down" after it); 25 waited in a queue of 10.
    expect(written).toHaveLength(2);
    accept = true;
    sub.drained();
    expect(written[2]).toBe('{"__trace":"dropped","n":15}');
    expect(written.slice(3).map((l) => (JSON.parse(l) as { event: { n: number } }).event.n)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    hub.close();
  });

  it('every mutating API call becomes an audit event, delivered to audit outputs', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    await api('POST', `/v1/outputs/${s.oid}`, { name: 'audit-archive', module: 'file', type: 'audit', dest_path: 'audit.jsonl' });
    await api('POST', `/v1/installationkeys/${s.oid}`, { desc: 'laptops', tags: 'laptop' });
    const refused = await api('POST', `/v1/outputs/${s.oid}`, { name: 'x', module: 'nope', type: 'event' });
    expect(refused.status).toBe(400);
    await api('GET', `/v1/outputs/${s.oid}`); // reads are not audited
    const now = Math.floor(Date.now() / 1000);
    const read = async () => (await api<{ events: Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }> }>('GET', `/v1/insight/${s.oid}/stream/audit?start=${now - 60}&end=${now + 60}`)).body.events;
    await waitFor(async () => (await read()).length === 3, { message: 'three audit events' });
    const audit = await read();
    expect(audit.map((e) => e.event.etype)).toEqual(['outputs_set', 'installationkeys_set', 'outputs_set']);
    expect(audit[0]!.routing).toMatchObject({ oid: s.oid, event_type: 'audit' });
    expect(audit[0]!.event).toMatchObject({ oid: s.oid, ts: expect.any(Number), ident: expect.stringContaining('('), entity: { name: 'audit-archive', module: 'file', type: 'audit' }, mtd: { method: 'POST', route: '/v1/outputs/:oid', status: 200 } });
    expect(audit[2]!.event).toMatchObject({ error: 'HTTP 400' });
    expect(JSON.stringify(audit)).not.toContain(s.apiKey.split('.')[1]!);
    const file = path.join(s.dataDir, 'outputs', 'audit.jsonl');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length >= 2, { message: 'audit events in the audit output' });
    expect(readFileSync(file, 'utf8')).toContain('installationkeys_set');
  });
});
