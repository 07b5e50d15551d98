// The USP v2 endpoint (docs/usp.md) with a client written from the page alone (harness/usp-doc-client.ts):
// exactly-once storage across a forced reconnect and a server SIGKILL, mapping, identity, BACKOFF, and
// malformed traffic that closes only the offending connection.
import { rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { pack } from 'msgpackr';
import { v5 as uuidV5 } from 'uuid';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createLogger } from '../src/observability/logger.js';
import { startServerProcess, type ServerProcess } from './harness/processes.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { UspDocClient } from './harness/usp-doc-client.js';
import { waitFor } from './harness/wait.js';
import { openStoreOf } from './harness/store-of.js';

function header(server: { oid: string; installationKey: string }, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 2, oid: server.oid, iid: server.installationKey, host_name: 'relay-01', platform: 'json', architecture: 'usp_adapter',
    sensor_seed_key: 'relay-01', instance_id: crypto.randomUUID(), is_compressed: true, data_format: 'msgpack', mappings: [], indexing: [],
    ...overrides,
  };
}

function uspUrl(httpUrl: string): string {
  return `${httpUrl.replace(/^http/, 'ws')}/usp`;
}

interface TimelineEvent {
  routing: Record<string, unknown>;
  event: Record<string, unknown>;
}

async function timeline(server: TestServer, sid: string, query = ''): Promise<TimelineEvent[]> {
  const api = apiClient(server.url, server.apiKey);
  const res = await api<{ events: TimelineEvent[] }>('GET', `/v1/insight/${server.oid}/${sid}?start=0&end=${Math.floor(Date.now() / 1000) + 3600}&limit=5000${query}`);
  expect(res.status).toBe(200);
  return res.body.events;
}

describe('USP: 100,000 messages across a forced reconnect and a server SIGKILL', () => {
  const servers: ServerProcess[] = [];
  afterAll(() => {
    for (const s of servers) if (s.running) s.kill('SIGKILL');
    if (servers[0]) rmSync(servers[0].dataDir, { recursive: true, force: true });
  });

  it('stores every message exactly once', async () => {
    const TOTAL = 100_000;
    const first = await startServerProcess({ env: { PICKET_SQLITE_SYNC: 'full' } });
    servers.push(first);
    const creds = { oid: first.credentials.oid, installationKey: first.credentials.installation_key };
    const client = new UspDocClient({ url: uspUrl(first.url), header: header(creds, { sensor_seed_key: 'bulk' }), compressed: true });
    client.start();
    const sid = uuidV5('bulk', creds.oid);
    let shipped = 0;
    // Ship in bursts, keeping at most 20,000 unacknowledged in the client.
    const shipping = (async () => {
      while (shipped < TOTAL) {
        if (client.pending < 20_000) {
          const end = Math.min(TOTAL, shipped + 1000);
          for (; shipped < end; shipped++) client.ship({ e: 'usp_bulk', j: { n: shipped, line: `message number ${shipped}` } });
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    await waitFor(() => client.ackedUpTo >= 25_000, { timeoutMs: 60_000, message: 'a quarter acknowledged' });
    const api = apiClient(first.url, first.credentials.api_key);
    const re = await api<{ reconnecting: boolean }>('POST', `/v1/${sid}/reconnect`);
    expect(re.status).toBe(200);
    await waitFor(() => client.connections >= 2 && client.isReady, { timeoutMs: 20_000, message: 'reconnected after re' });
    expect(client.controls.some((c) => c.v === 're')).toBe(true);

    await waitFor(() => client.ackedUpTo >= 60_000, { timeoutMs: 60_000, message: 'most acknowledged' });
    first.kill('SIGKILL');
    await first.exited;
    const ackedAtKill = client.ackedUpTo;
    const second = await startServerProcess({ dataDir: first.dataDir, port: first.port, env: { PICKET_SQLITE_SYNC: 'full' } });
    servers.push(second);
    await shipping;
    await waitFor(() => client.ackedUpTo === TOTAL && client.pending === 0, { timeoutMs: 90_000, message: 'everything acknowledged' });
    expect(client.connections).toBeGreaterThanOrEqual(3);
    expect(client.resent).toBeGreaterThan(0);
    expect(client.errors).toEqual([]);
    client.stop();

    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    second.kill('SIGTERM');
    await second.exited;
    const store = await openStoreOf(first.dataDir);
    try {
      const read = async (eventType: string) =>
        (await store.queryTimeline({ oid: first.credentials.oid, sid, start: 0, end: Date.now() + 60_000, eventType, limit: TOTAL * 2 })).events.map(
          (json) => JSON.parse(json) as { event: { n: number } },
        );
      const ns = (await read('usp_bulk')).map((e) => e.event.n);
      expect(ns).toHaveLength(TOTAL);
      expect(new Set(ns).size).toBe(TOTAL);
      expect(Math.min(...ns)).toBe(0);
      expect(Math.max(...ns)).toBe(TOTAL - 1);
      expect((await read('CONNECTED')).length).toBeGreaterThanOrEqual(3);
    } finally {
      await store.close();
    }
    expect(ackedAtKill).toBeGreaterThanOrEqual(60_000);
    expect(metrics).toMatch(/picket_org_events_received_total\{oid="[^"]+"\} \d+/);
  }, 180_000);
});

describe('USP endpoint (in-process server)', () => {
  let server: TestServer;
  const logs: Array<Record<string, unknown>> = [];
  const clients: UspDocClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.stop();
    await server?.close();
    logs.length = 0;
  });

  async function start(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
    const logger = createLogger('trace', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    server = await startTestServer(overrides, { logger });
    return server;
  }

  function client(h: Record<string, unknown>): UspDocClient {
    const c = new UspDocClient({ url: uspUrl(server.url), header: h, compressed: h.is_compressed === true });
    clients.push(c);
    c.start();
    return c;
  }

  it('enrolls the adapter once under a deterministic sid and maps text, JSON and binary payloads', async () => {
    await start();
    const h = header(server, {
      platform: 'text', host_name: 'syslog-relay', sensor_seed_key: 'syslog-relay', is_compressed: false,
      mapping: {
        parsing_re: '^(?P<host>\\S+) (?P<app>\\w+): (?P<msg>.*)$', sensor_hostname_path: 'host', event_type_path: 'kind',
        event_time_path: 'when', investigation_id_path: 'case/id',
      },
    });
    const c = client(h);
    await waitFor(() => c.isReady, { message: 'ready' });
    expect(c.controls.slice(0, 2)).toEqual([{ v: 'rd' }, { v: 'fl', win: 1024 }]);
    c.ship({ t: 'web-07 sshd: accepted publickey for root' });
    c.ship({ j: { kind: 'LOGIN_FAILED', when: 1763800000, case: { id: 'inv-42' }, user: 'bob' } });
    c.ship({ j: { kind: 'bad type!', when: '2025-11-22T08:00:00Z' }, e: 'EXPLICIT', s: 1763800000123, inv: 'inv-7', this: 'a1' });
    c.ship({ b: Buffer.from([0, 1, 2, 255]) });
    c.ship({ t: 'does not match the regex' });
    await waitFor(() => c.ackedUpTo === 5, { message: 'five acknowledged' });

    const sid = uuidV5('syslog-relay', server.oid);
    const events = (await timeline(server, sid)).filter((e) => !['CONNECTED', 'enrollment'].includes(e.routing.event_type as string));
    expect(events).toHaveLength(5);
    const byType = new Map(events.map((e) => [JSON.stringify(e.event), e]));
    const t = byType.get(JSON.stringify({ host: 'web-07', app: 'sshd', msg: 'accepted publickey for root' }))!;
    expect(t.routing).toMatchObject({ sid, event_type: 'log', hostname: 'web-07', arch: 9, plat: 0x80000000 });
    const j = [...byType.values()].find((e) => e.routing.event_type === 'LOGIN_FAILED')!;
    expect(j.routing).toMatchObject({ event_time: 1763800000000, investigation_id: 'inv-42', hostname: 'syslog-relay' });
    const x = [...byType.values()].find((e) => e.routing.event_type === 'EXPLICIT')!;
    expect(x.routing).toMatchObject({ event_time: 1763800000123, investigation_id: 'inv-7', this: 'a1' });
    expect([...byType.values()].find((e) => e.event.base64 !== undefined)!.event).toEqual({ base64: Buffer.from([0, 1, 2, 255]).toString('base64') });
    expect(byType.get(JSON.stringify({ text: 'does not match the regex' }))!.routing.event_type).toBe('log');

    // The adapter is a sensor like any other; a second connection with the same seed key is the same sensor.
    const api = apiClient(server.url, server.apiKey);
    const got = await api<{ info: Record<string, unknown>; is_online: boolean }>('GET', `/v1/${sid}`);
    expect(got.body.is_online).toBe(true);
    expect(got.body.info).toMatchObject({ sid, arch: 9, plat: 0x80000000, hostname: 'syslog-relay', sensor_version: 'usp/2' });
    // It is in the organization's sensor list, online, with its platform and architecture, also among the online ones.
    for (const query of ['', '?is_online_only=true']) {
      const list = await api<{ sensors: Array<Record<string, unknown>> }>('GET', `/v1/sensors/${server.oid}${query}`);
      expect(list.status).toBe(200);
      expect(list.body.sensors.filter((x) => x.sid === sid)).toEqual([expect.objectContaining({ sid, arch: 9, plat: 0x80000000, hostname: 'syslog-relay', is_online: true })]);
    }
    const task = await api<{ error: { message: string } }>('POST', `/v1/${sid}`, { tasks: ['selftest'] });
    expect(task.status).toBe(409);
    expect(JSON.stringify(task.body)).toContain('adapters take no tasks');
    c.stop();
    await waitFor(async () => (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online === false, { message: 'offline' });
    const offline = await api<{ sensors: Array<Record<string, unknown>> }>('GET', `/v1/sensors/${server.oid}`);
    expect(offline.body.sensors.filter((x) => x.sid === sid)).toEqual([expect.objectContaining({ sid, arch: 9, is_online: false })]);
    const again = client({ ...h, instance_id: crypto.randomUUID() });
    await waitFor(() => again.isReady, { message: 'ready again' });
    again.ship({ j: { kind: 'SECOND' } });
    await waitFor(() => again.ackedUpTo === 1);
    const all = await timeline(server, sid);
    expect(all.filter((e) => e.routing.event_type === 'enrollment')).toHaveLength(1);
    expect(all.filter((e) => e.routing.event_type === 'CONNECTED')).toHaveLength(2);
    expect(all.filter((e) => e.routing.event_type === 'SECOND')).toHaveLength(1);
  });

  it('an organization over its events-per-second limit gets bo; the client pauses, BACKOFF is on the timeline, nothing is lost', async () => {
    // More messages than one window (1024), so the client still has some to send when the bo arrives.
    await start({ orgEpsLimit: 1000 });
    const c = client(header(server, { sensor_seed_key: 'noisy' }));
    await waitFor(() => c.isReady);
    for (let i = 0; i < 3000; i++) c.ship({ e: 'NOISY', j: { i } });
    await waitFor(() => c.controls.some((m) => m.v === 'bo'), { message: 'a bo' });
    const bo = c.controls.find((m) => m.v === 'bo')! as { dur: number };
    expect(bo.dur).toBeGreaterThanOrEqual(1);
    await waitFor(() => c.ackedUpTo === 3000 && c.pending === 0, { timeoutMs: 30_000, message: 'all delivered after the backoff' });

    const sid = uuidV5('noisy', server.oid);
    const events = await timeline(server, sid);
    expect(events.filter((e) => e.routing.event_type === 'NOISY')).toHaveLength(3000);
    const backoffs = events.filter((e) => e.routing.event_type === 'BACKOFF');
    expect(backoffs.length).toBeGreaterThanOrEqual(1);
    expect(backoffs[0]!.event).toMatchObject({ seconds: bo.dur, reason: expect.stringContaining('1000 events/s') });

    // The client put nothing on the wire while the first backoff was in force, and resumed after it. (Frames it
    // had sent before the bo arrived may still be read by a busy server after BACKOFF was sent: that is the
    // in-flight window, not a violation.)
    const first = c.backoffs[0]!;
    const during = c.sentAt.filter((t) => t > first.at && t < first.at + first.dur * 1000 - 20);
    expect(during).toEqual([]);
    expect(c.sentAt.some((t) => t >= first.at + first.dur * 1000 - 20)).toBe(true);
    // The server logged the BACKOFF it sent and kept receiving this sensor's batches after it ended.
    const sentLog = logs.find((l) => l.msg === 'BACKOFF sent' && l.sid === sid)!;
    const from = Date.parse(sentLog.time as string);
    const received = logs.filter((l) => l.msg === 'batch received' && l.sid === sid).map((l) => Date.parse(l.time as string));
    expect(received.some((t) => t >= from + bo.dur * 1000 - 100)).toBe(true);
  });

  it('counts the events and bytes each organization sends (picket_org_events_received_total, picket_org_bytes_received_total)', async () => {
    await start();
    const api = apiClient(server.url, server.apiKey);
    const other = await api<{ oid: string; installation_key: string }>('POST', '/v1/orgs', { name: 'metered' });
    expect(other.status).toBe(201);
    const a = client(header(server, { sensor_seed_key: 'meter-a' }));
    const b = client(header({ oid: other.body.oid, installationKey: other.body.installation_key }, { sensor_seed_key: 'meter-b', is_compressed: false }));
    await waitFor(() => a.isReady && b.isReady, { message: 'both adapters ready' });
    for (let i = 0; i < 37; i++) a.ship({ e: 'METERED', j: { i, pad: 'a'.repeat(i) } });
    for (let i = 0; i < 12; i++) b.ship({ e: 'METERED', j: { i } });
    await waitFor(() => a.ackedUpTo === 37 && b.ackedUpTo === 12, { message: 'everything acknowledged' });

    const text = await (await fetch(`${server.url}/metrics`)).text();
    const value = (name: string, oid: string): number => Number(new RegExp(`^${name}\\{oid="${oid}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    // Exactly what each organization sent (platform events such as CONNECTED are the cloud's, not received).
    expect(value('picket_org_events_received_total', server.oid)).toBe(37);
    expect(value('picket_org_events_received_total', other.body.oid)).toBe(12);
    // Bytes as on the wire: at least one per message, and the organizations counted apart.
    expect(value('picket_org_bytes_received_total', server.oid)).toBeGreaterThanOrEqual(37);
    expect(value('picket_org_bytes_received_total', other.body.oid)).toBeGreaterThanOrEqual(12);
    expect(text.match(/^picket_org_events_received_total\{/gm)).toHaveLength(2);
  });

  it('messages resent at or below what is stored are acknowledged again, counted as duplicates, and stored once', async () => {
    await start();
    const h = header(server, { sensor_seed_key: 'resender', is_compressed: false });
    const counters = async (): Promise<{ batches: number; events: number }> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
      return { batches: value('picket_batches_duplicate_total'), events: value('picket_events_duplicate_total') };
    };
    /** One connection with the same header (so the same stream): sends the messages, waits for the ack of the last. */
    async function connection(xs: number[]): Promise<number[]> {
      const ws = new WebSocket(uspUrl(server.url));
      const acks: number[] = [];
      let ready = false;
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as { v: string; x?: number };
        if (m.v === 'rd') ready = true;
        if (m.v === 'ack') acks.push(m.x!);
      });
      const closed = new Promise((r) => ws.on('close', r));
      await new Promise((r) => ws.on('open', r));
      ws.send(JSON.stringify(h));
      await waitFor(() => ready, { message: 'rd' });
      xs.forEach((x, i) => ws.send(pack({ x, e: 'RESENT', j: { n: x }, ...(i === xs.length - 1 ? { a: true } : {}) })));
      await waitFor(() => acks.includes(xs.at(-1)!), { message: `the ack of ${xs.at(-1)}` });
      ws.close();
      await closed;
      return acks;
    }
    expect(await connection([1, 2, 3, 4, 5])).toEqual([5]);
    expect(await counters()).toEqual({ batches: 0, events: 0 });
    // After a reconnect the adapter resends all five (it cannot know its ack arrived), then a new one.
    expect(await connection([1, 2, 3, 4, 5, 6])).toEqual([6]);
    expect(await counters()).toEqual({ batches: 5, events: 5 });
    // A reconnect resending only what is stored: acknowledged (the ack it asked for on 6), nothing stored.
    expect(await connection([4, 5, 6])).toEqual([6]);
    expect(await counters()).toEqual({ batches: 8, events: 8 });
    const stored = (await timeline(server, uuidV5('resender', server.oid))).filter((e) => e.routing.event_type === 'RESENT').map((e) => e.event.n);
    expect(stored).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('malformed traffic closes only the offending connection, with an error', async () => {
    await start({ maxFrameBytes: 65_536 });
    const good = client(header(server, { sensor_seed_key: 'good' }));
    await waitFor(() => good.isReady);
    let n = 0;
    const steady = setInterval(() => good.ship({ e: 'STEADY', j: { n: n++ } }), 5);

    async function raw(frames: Array<(ws: WebSocket) => void>, waitForReady = true): Promise<{ code: number; errors: string[] }> {
      const ws = new WebSocket(uspUrl(server.url));
      const errors: string[] = [];
      let ready = false;
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as { v: string; err?: string };
        if (m.v === 'error') errors.push(m.err!);
        if (m.v === 'rd') ready = true;
      });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      await new Promise((r) => ws.on('open', r));
      frames[0]!(ws);
      if (frames.length > 1) {
        if (waitForReady) await waitFor(() => ready, { message: 'rd on the raw connection' });
        for (const f of frames.slice(1)) f(ws);
      }
      return { code: await closed, errors };
    }
    const hdr = (o: Record<string, unknown> = {}) => (ws: WebSocket) => ws.send(JSON.stringify(header(server, { sensor_seed_key: `bad-${crypto.randomUUID()}`, ...o })));
    const bin = (b: Buffer) => (ws: WebSocket) => ws.send(b);

    expect(await raw([(ws) => ws.send('{not json')])).toEqual({ code: 4000, errors: [expect.stringContaining('not JSON')] });
    expect(await raw([hdr({ sensor_seed_key: undefined })])).toEqual({ code: 4000, errors: [expect.stringContaining('sensor_seed_key')] });
    expect(await raw([hdr({ platform: 'amiga' })])).toEqual({ code: 4000, errors: [expect.stringContaining('unknown platform')] });
    expect(await raw([hdr({ iid: 'nope.nope' })])).toEqual({ code: 4003, errors: [expect.stringContaining('installation key')] });
    expect(await raw([bin(pack({ x: 1, t: 'header first?' }))])).toEqual({ code: 4000, errors: [expect.stringContaining('header first')] });
    expect(await raw([hdr({ is_compressed: false }), bin(Buffer.from([0xc1, 0xc1, 0xc1]))])).toEqual({ code: 4000, errors: [expect.stringContaining('bad msgpack')] });
    expect(await raw([hdr({ is_compressed: true }), bin(pack({ x: 1, t: 'not gzipped' }))])).toEqual({ code: 4000, errors: [expect.stringContaining('bad gzip')] });
    expect(await raw([hdr({ is_compressed: false }), bin(pack({ x: 1 }))])).toEqual({ code: 4000, errors: [expect.stringContaining('exactly one of t, j, b')] });
    expect(await raw([hdr({ is_compressed: false, sensor_seed_key: 'backwards' }), bin(pack({ x: 5, t: 'first' })), bin(pack({ x: 3, t: 'second' }))])).toEqual({ code: 4006, errors: [expect.stringContaining('not after 5')] });
    // A gzip bomb: small on the wire, over the limit once inflated.
    const bomb = gzipSync(pack({ x: 1, t: 'z'.repeat(200_000) }));
    expect(bomb.length).toBeLessThan(65_536);
    expect(await raw([hdr({ is_compressed: true }), bin(bomb)])).toEqual({ code: 1009, errors: [expect.stringContaining('larger than 65536')] });
    // A message over the limit on the wire is refused with an error saying so, then 1009.
    expect(await raw([hdr({ is_compressed: false }), bin(pack({ x: 1, t: 'y'.repeat(100_000) }))])).toEqual({ code: 1009, errors: [expect.stringContaining('exceeds the limit of 65536 bytes')] });
    // So is a connection header over the limit.
    expect(await raw([(ws) => ws.send(JSON.stringify(header(server, { sensor_seed_key: 'big-header', padding: 'h'.repeat(70_000) })))])).toEqual({
      code: 1009, errors: [expect.stringContaining('exceeds the limit of 65536 bytes')],
    });
    // Only a frame far over it (more than twice the limit) is cut by the WebSocket layer unread, without an error.
    expect(await raw([hdr({ is_compressed: false }), bin(pack({ x: 1, t: 'w'.repeat(140_000) }))])).toEqual({ code: 1009, errors: [] });

    // The well-behaved adapter never noticed.
    const before = good.ackedUpTo;
    await waitFor(() => good.ackedUpTo > before + 10, { message: 'the good connection still acknowledged' });
    clearInterval(steady);
    expect(good.connections).toBe(1);
    expect(good.errors).toEqual([]);
    // Nothing of the bad sequence's second message was stored; its first was.
    const logged = async () => (await timeline(server, uuidV5('backwards', server.oid))).filter((e) => e.routing.event_type === 'log').map((e) => e.event);
    await waitFor(async () => (await logged()).length > 0, { message: 'the first message of the backwards connection stored' });
    expect(await logged()).toEqual([{ text: 'first' }]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/picket_protocol_errors_total\{reason="frame_too_big"\} 4/);
    expect(metrics).toMatch(/picket_protocol_errors_total\{reason="usp_bad_message"\} [1-9]/);
    expect(metrics).toMatch(/picket_protocol_errors_total\{reason="bad_sequence"\} 1/);
  });
});
