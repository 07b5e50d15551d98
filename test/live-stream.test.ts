// Live streams (NDJSON and WebSocket) and the audit stream, on a real server.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { validateEvent } from '../src/catalogue/index.js';
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
    const bad = await fetch(`${s.url}/v1/stream/${s.oid}?type=weather`, { method: 'POST', headers: { authorization: `Bearer ${s.apiKey}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain('unknown stream "weather"');
  });

  it('NDJSON: the tag and inv_id filters pass only events with that tag or investigation id', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    const tagged = await sensor(s);
    const plain = await sensor(s);
    expect((await api('POST', `/v1/${tagged.sid}/tags`, { tags: ['vip'] })).status).toBe(200);
    const open = async (fields: Record<string, string>): Promise<Array<Record<string, unknown>>> => {
      const abort = new AbortController();
      cleanups.push(() => abort.abort());
      const res = await fetch(`${s.url}/v1/stream/${s.oid}`, {
        method: 'POST', signal: abort.signal,
        headers: { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ event_type: 'LIVE_TEST', ...fields }),
      });
      expect(res.status).toBe(200);
      const lines: Array<Record<string, unknown>> = [];
      void readLines(res, lines);
      await waitFor(() => lines.length >= 1, { message: 'connected' });
      return lines;
    };
    const byTag = await open({ tag: 'vip' });
    const byCase = await open({ inv_id: 'case-7' });
    tagged.client.sendEvents(1, events(2));
    tagged.client.sendEvents(2, events(1, { investigation_id: 'case-7' }));
    plain.client.sendEvents(1, events(3));
    plain.client.sendEvents(2, events(2, { investigation_id: 'case-7' }));
    plain.client.sendEvents(3, events(1, { investigation_id: 'case-8' }));
    await tagged.client.waitForAck(2);
    await plain.client.waitForAck(3);
    // A last event matching both filters, stored after all of the above: once it is seen, nothing else is coming.
    tagged.client.sendEvents(3, events(1, { investigation_id: 'case-7', event: { last: true } }));
    type Line = { routing: { sid: string; tags: string[]; investigation_id?: string }; event: { n?: number; last?: boolean } };
    const routed = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.routing) as unknown as Line[];
    await waitFor(() => routed(byTag).some((e) => e.event.last) && routed(byCase).some((e) => e.event.last), { message: 'the last event on both streams' });
    expect(routed(byTag).map((e) => [e.routing.sid, e.routing.tags, e.routing.investigation_id ?? null, e.event.last ?? false])).toEqual([
      [tagged.sid, ['vip'], null, false], [tagged.sid, ['vip'], null, false], [tagged.sid, ['vip'], 'case-7', false], [tagged.sid, ['vip'], 'case-7', true],
    ]);
    // (The two sensors' batches may interleave in either order; each sensor's own order holds.)
    const cases = routed(byCase).map((e) => [e.routing.sid, e.routing.investigation_id, e.event.last ?? false]);
    expect(cases.filter((c) => c[0] === plain.sid)).toEqual([[plain.sid, 'case-7', false], [plain.sid, 'case-7', false]]);
    expect(cases.filter((c) => c[0] === tagged.sid)).toEqual([[tagged.sid, 'case-7', false], [tagged.sid, 'case-7', true]]);
    expect(cases.at(-1)).toEqual([tagged.sid, 'case-7', true]);
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
    // Keepalives come as frames too (PICKET_LIVE_KEEPALIVE is 0.2 s here), more than once on an idle stream.
    await waitFor(() => got.filter((m) => m.__trace === 'keepalive').length >= 2, { message: 'keepalives on the WebSocket' });
    expect(got.filter((m) => m.__trace !== undefined && m.__trace !== 'keepalive')).toEqual([{ __trace: 'connected' }]);

    const bad = new WebSocket(url);
    const badMessages: string[] = [];
    bad.on('message', (d) => badMessages.push(d.toString()));
    const closed = new Promise<number>((r) => bad.on('close', (code) => r(code)));
    await new Promise((r) => bad.on('open', r));
    bad.send(JSON.stringify({ oid: s.oid, api_key: 'nope.nope' }));
    expect(await closed).toBe(4003);
    expect(badMessages[0]).toContain('invalid or missing api_key');
  });

  it('schedule ticks reach live clients (NDJSON and WebSocket) once the injected clock crosses a boundary; outputs still refuse schedule', async () => {
    // Monday 2026-01-05 00:10 UTC, inside every period; the next boundary (30m) is at 00:30.
    let clock = Date.UTC(2026, 0, 5, 0, 10);
    const s = await startTestServer({ liveKeepaliveS: 60 }, { now: () => clock });
    cleanups.push(() => s.close());
    await s.server.schedule.tick(); // the first start only records the current periods
    const { sid } = await sensor(s); // a sensor online: the organization and the sensor are eligible

    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    const res = await fetch(`${s.url}/v1/stream/${s.oid}?type=schedule`, { method: 'POST', signal: abort.signal, headers: { authorization: `Bearer ${s.apiKey}` } });
    expect(res.status).toBe(200);
    const lines: Array<Record<string, unknown>> = [];
    void readLines(res, lines);
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/stream/ws`);
    cleanups.push(() => ws.close());
    const frames: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await new Promise((r) => ws.on('open', r));
    ws.send(JSON.stringify({ oid: s.oid, api_key: s.apiKey, type: 'schedule', sid, event_type: '30m_per_sensor' }));
    await waitFor(() => lines.length >= 1 && frames.length >= 1, { message: 'both streams connected' });

    clock = Date.UTC(2026, 0, 5, 0, 30);
    await s.server.schedule.tick();
    type Tick = { routing: { oid: string; sid: string; event_type: string }; event: { frequency: number } };
    const ticks = (from: Array<Record<string, unknown>>) => from.filter((l) => l.routing) as unknown as Tick[];
    await waitFor(() => ticks(lines).length >= 2 && ticks(frames).length >= 1, { message: 'the 30m ticks on both streams' });
    expect(ticks(lines).map((t) => [t.routing.event_type, t.routing.oid, t.event.frequency]).sort()).toEqual([
      ['30m_per_org', s.oid, 1800], ['30m_per_sensor', s.oid, 1800],
    ]);
    for (const t of ticks(lines)) expect(validateEvent(t, { produced: true }).errors).toEqual([]);
    expect(ticks(lines).find((t) => t.routing.event_type === '30m_per_sensor')!.routing.sid).toBe(sid);
    expect(ticks(frames)).toEqual([ticks(lines).find((t) => t.routing.event_type === '30m_per_sensor')]);

    // The next boundary (01:00) crosses 30m and 1h: the WebSocket filter still passes only 30m_per_sensor.
    clock = Date.UTC(2026, 0, 5, 1, 0);
    await s.server.schedule.tick();
    await waitFor(() => ticks(lines).length >= 6 && ticks(frames).length >= 2, { message: 'the 01:00 ticks' });
    expect(ticks(lines).slice(2).map((t) => t.routing.event_type).sort()).toEqual(['1h_per_org', '1h_per_sensor', '30m_per_org', '30m_per_sensor']);
    expect(ticks(frames).map((t) => t.routing.event_type)).toEqual(['30m_per_sensor', '30m_per_sensor']);

    // Ticks are not retained, so no output can follow them.
    const refused = await apiClient(s.url, s.apiKey)<{ error: string; field: string }>('POST', `/v1/outputs/${s.oid}`, { name: 'ticks', module: 'file', type: 'schedule', dest_path: 'ticks.jsonl' });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ field: 'type', error: expect.stringContaining('unknown stream "schedule"') });
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

  it('each mutating route leaves exactly one audit record with the documented fields', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    const { sid } = await sensor(s);
    const keyId = s.apiKey.split('.')[0]!;
    const keyName = (await api<{ keys: Array<{ key_id: string; name: string }> }>('GET', `/v1/orgs/${s.oid}/keys`)).body.keys.find((k) => k.key_id === keyId)!.name;
    type Audit = { routing: Record<string, unknown>; event: Record<string, unknown> & { mtd: Record<string, unknown>; entity: Record<string, unknown> } };
    const now = Math.floor(Date.now() / 1000);
    const read = async (): Promise<Audit[]> => (await api<{ events: Audit[] }>('GET', `/v1/insight/${s.oid}/stream/audit?start=${now - 60}&end=${now + 3600}&limit=1000`)).body.events;
    let iid = '';
    const calls: Array<{ method: string; url: () => string; route: string; body?: Record<string, unknown> | (() => Record<string, unknown>); status: number; etype: string; entity: (res: unknown) => Record<string, unknown> }> = [
      { method: 'POST', url: () => `/v1/${sid}/tags`, route: '/v1/:sid/tags', body: { tags: ['vip', 'web'] }, status: 200, etype: 'sensor_tags_set', entity: () => ({ sid, tags: ['vip', 'web'] }) },
      { method: 'DELETE', url: () => `/v1/${sid}/tags`, route: '/v1/:sid/tags', body: { tags: 'web' }, status: 200, etype: 'sensor_tags_delete', entity: () => ({ sid, tags: 'web' }) },
      { method: 'POST', url: () => `/v1/${sid}`, route: '/v1/:sid', body: { tasks: ['os_version'], investigation_id: 'case-audit' }, status: 200, etype: 'sensor_task', entity: () => ({ sid, investigation_id: 'case-audit' }) },
      { method: 'POST', url: () => `/v1/outputs/${s.oid}`, route: '/v1/outputs/:oid', body: { name: 'siem', module: 'file', type: 'event', dest_path: 'siem.jsonl' }, status: 200, etype: 'outputs_set', entity: () => ({ name: 'siem', module: 'file', type: 'event' }) },
      { method: 'DELETE', url: () => `/v1/outputs/${s.oid}`, route: '/v1/outputs/:oid', body: { name: 'siem' }, status: 200, etype: 'outputs_delete', entity: () => ({ name: 'siem' }) },
      { method: 'POST', url: () => `/v1/insight/${s.oid}/ingestion_keys`, route: '/v1/insight/:oid/ingestion_keys', body: { name: 'uploads' }, status: 201, etype: 'insight_ingestion_keys_set', entity: () => ({ name: 'uploads' }) },
      { method: 'DELETE', url: () => `/v1/insight/${s.oid}/ingestion_keys`, route: '/v1/insight/:oid/ingestion_keys', body: { name: 'uploads' }, status: 200, etype: 'insight_ingestion_keys_delete', entity: () => ({ name: 'uploads' }) },
      { method: 'POST', url: () => `/v1/installationkeys/${s.oid}`, route: '/v1/installationkeys/:oid', body: { desc: 'laptops', tags: 'laptop' }, status: 201, etype: 'installationkeys_set', entity: (res) => ((iid = (res as { iid: string }).iid), { tags: 'laptop' }) },
      { method: 'DELETE', url: () => `/v1/installationkeys/${s.oid}`, route: '/v1/installationkeys/:oid', body: () => ({ iid }), status: 200, etype: 'installationkeys_delete', entity: () => ({ iid }) },
      { method: 'DELETE', url: () => `/v1/${sid}`, route: '/v1/:sid', status: 200, etype: 'sensor_delete', entity: () => ({ sid }) },
    ];
    const seen: Audit[] = [];
    for (const call of calls) {
      const body = typeof call.body === 'function' ? call.body() : call.body;
      const res = await api(call.method, call.url(), body);
      expect(res.status, `${call.method} ${call.route}: ${JSON.stringify(res.body)}`).toBe(call.status);
      const entity = call.entity(res.body);
      // Each call's record is stored before the next call is made, so the log holds them in call order.
      const records = await waitFor(async () => {
        const all = await read();
        return all.length > seen.length ? all : undefined;
      }, { message: `the audit record of ${call.method} ${call.route}` });
      expect(records, `one record for ${call.method} ${call.route}`).toHaveLength(seen.length + 1);
      const record = records.at(-1)!;
      seen.push(record);
      expect(validateEvent(record, { produced: true }).errors).toEqual([]);
      expect(record.routing).toMatchObject({ oid: s.oid, event_type: 'audit' });
      const e = record.event;
      expect(Object.keys(e).sort(), call.etype).toEqual(['entity', 'etype', 'ident', 'msg', 'mtd', 'oid', 'origin', 'ts']);
      expect(e).toMatchObject({
        oid: s.oid,
        etype: call.etype,
        msg: `${call.method} ${call.route} by API key "${keyName}": ${call.status}`,
        ident: `${keyName} (${keyId})`,
        entity,
        mtd: { method: call.method, route: call.route, status: call.status, req_id: expect.any(String) },
      });
      expect(e.ts).toBeGreaterThanOrEqual(now - 1);
      expect(e.ts).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
      expect(Object.keys(e.entity).sort(), call.etype).toEqual(Object.keys(entity).sort());
    }
    // Not audited: reads, public routes (an artifact upload, a cloud adapter's inbound webhook) and calls
    // without a valid API key. A last audited call then shows nothing else arrived, late or twice.
    await api('GET', `/v1/outputs/${s.oid}`);
    await api('GET', `/v1/sensors/${s.oid}`);
    const ingestKey = (await api<{ key: string }>('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'late' })).body.key;
    await waitFor(async () => (await read()).length === seen.length + 1, { message: 'the ingestion key audit record' });
    const uploaded = await fetch(`${s.url}/ingest`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${s.oid}:${ingestKey}`).toString('base64')}`, 'lc-payload-id': 'audit-check' }, body: 'bytes' });
    expect(uploaded.status).toBe(200);
    const hook = await fetch(`${s.url}/v1/ingest/webhook/${s.oid}/nope`, { method: 'POST', headers: { 'x-picket-secret': 'not-a-secret-0123456789' }, body: '{}' });
    expect(hook.status).toBe(401);
    const anonymous = await fetch(`${s.url}/v1/outputs/${s.oid}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', module: 'file', type: 'event', dest_path: 'x.jsonl' }) });
    expect(anonymous.status).toBe(401);
    const sentinel = await api('DELETE', `/v1/outputs/${s.oid}?name=missing`);
    expect(sentinel.status).toBe(404);
    const all = await waitFor(async () => {
      const list = await read();
      return list.length > seen.length + 1 ? list : undefined;
    }, { message: 'the sentinel audit record' });
    expect(all.map((r) => r.event.etype)).toEqual([...calls.map((c) => c.etype), 'insight_ingestion_keys_set', 'outputs_delete']);
    // A target named in the query string is recorded like one in the body.
    expect(all.at(-1)!.event).toMatchObject({ error: 'HTTP 404', mtd: { status: 404 }, entity: { name: 'missing' } });
    expect(JSON.stringify(all)).not.toContain(s.apiKey.split('.')[1]!);
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
