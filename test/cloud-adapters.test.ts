// Cloud adapters end to end on real servers: an inbound webhook and an HTTP poller (against a real
// node:http API) deliver events under their adapter sensor; a poller whose API answers 401 is disabled
// after its grace period with cloud_adapter_disabled, and works again once fixed and re-enabled; a poller
// resumes from its stored cursor after a restart; the syslog listener receives from the system `logger`.
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { ARCHITECTURE, PLATFORM } from '../src/domain/platform.js';
import { adapterSid } from '../src/services/sensor-admission.js';
import { runCli } from './harness/processes.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const run = promisify(execFile);

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; sid?: string };
  event: Record<string, unknown>;
}
interface AdapterView {
  name: string;
  sid: string;
  enabled: boolean;
  status: { state: string; failures: number; last_error: string | null; events: number };
  [field: string]: unknown;
}

/** A JSON API to poll: records with increasing ids, `?since=<id>` returns the later ones; `x-api-key` must be right. */
class RecordsApi {
  records: Array<Record<string, unknown>> = [];
  key = 'good-key';
  readonly requests: Array<{ since: string | null; key: string | undefined }> = [];
  private server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = req.headers['x-api-key'] as string | undefined;
    this.requests.push({ since: url.searchParams.get('since'), key });
    if (key !== this.key) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid api key"}');
      return;
    }
    const since = Number(url.searchParams.get('since') ?? 0);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { items: this.records.filter((r) => Number(r.id) > since).slice(0, 2) } }));
  });

  add(n: number): void {
    for (let i = 0; i < n; i++) {
      const id = this.records.length + 1;
      this.records.push({ id, kind: 'user_login', user: `user${id}`, at: new Date(Date.UTC(2026, 0, 1, 0, 0, id)).toISOString() });
    }
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/logs`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('cloud adapters (real servers)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function server(dataDir?: string): Promise<TestServer> {
    const s = await startTestServer(dataDir ? { dataDir } : {});
    // Cleanups run last first: the directory goes only after the server has stopped writing into it.
    if (!dataDir) cleanups.push(() => rmSync(s.dataDir, { recursive: true, force: true }));
    cleanups.push(() => s.close({ keepData: true }));
    return s;
  }

  async function recordsApi(): Promise<{ api: RecordsApi; url: string }> {
    const api = new RecordsApi();
    const url = await api.listen();
    cleanups.push(() => api.close());
    return { api, url };
  }

  function helpers(s: TestServer) {
    const api = apiClient(s.url, s.apiKey);
    const timeline = async (sid: string): Promise<Envelope[]> => {
      const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${s.oid}/${sid}?start=0&end=${Math.floor(Date.now() / 1000) + 3600}&limit=5000`);
      expect(res.status).toBe(200);
      return res.body.events;
    };
    const deployment = async (): Promise<Envelope[]> => {
      const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${s.oid}/stream/deployment?start=0&end=${Math.floor(Date.now() / 1000) + 3600}&limit=5000`);
      expect(res.status).toBe(200);
      return res.body.events;
    };
    const adapter = async (name: string): Promise<AdapterView | undefined> => {
      const res = await api<Record<string, Record<string, AdapterView>>>('GET', `/v1/cloud_adapters/${s.oid}`);
      return res.body[s.oid]?.[name];
    };
    return { api, timeline, deployment, adapter };
  }

  it('an inbound webhook stores JSON, JSON arrays and NDJSON posted with its secret under its own sensor', async () => {
    const startedAt = Date.now();
    const s = await server();
    const { api, timeline, deployment, adapter } = helpers(s);
    const secret = 'webhook-secret-0123456789';
    const created = await api<AdapterView>('POST', `/v1/cloud_adapters/${s.oid}`, {
      name: 'hooks', type: 'webhook', secret, hostname: 'saas-hooks', mapping: { event_type_path: 'kind', event_time_path: 'at', sensor_hostname_path: 'device' },
    });
    expect(created.status).toBe(200);
    const sid = adapterSid(s.oid, 'cloud:hooks');
    expect(created.body).toMatchObject({ name: 'hooks', type: 'webhook', platform: 'json', secret: '********', sid, ingest_path: `/v1/ingest/webhook/${s.oid}/hooks` });
    expect(JSON.stringify(created.body)).not.toContain(secret);
    await waitFor(async () => (await adapter('hooks'))?.status.state === 'running', { message: 'webhook running' });

    const url = `${s.url}/v1/ingest/webhook/${s.oid}/hooks`;
    const post = (body: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers, body });
    const one = await post(JSON.stringify({ kind: 'push', at: '2026-01-02T03:04:05Z', repo: 'picket' }), { 'content-type': 'application/json', 'x-picket-secret': secret });
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ accepted: 1 });
    const many = await post(JSON.stringify([{ kind: 'pull', n: 1 }, { kind: 'pull', n: 2, device: 'laptop-7' }]), {
      'content-type': 'application/json', authorization: `Basic ${Buffer.from(`any:${secret}`).toString('base64')}`,
    });
    expect(await many.json()).toEqual({ accepted: 2 });
    const nd = await post('{"kind":"nd","n":1}\n{"kind":"nd","n":2}\n', { 'content-type': 'application/x-ndjson', 'x-picket-secret': secret });
    expect(await nd.json()).toEqual({ accepted: 2 });

    // Wrong secret, a body that is not records: refused, and nothing of them is stored.
    const wrong = await post('{"kind":"evil"}', { 'content-type': 'application/json', 'x-picket-secret': 'not-the-secret-at-all' });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ code: 'UNAUTHORIZED' });
    const bad = await post('{"kind":"half"}\nnot json', { 'content-type': 'application/x-ndjson', 'x-picket-secret': secret });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_BODY', error: expect.stringContaining('line 2') });
    const unknown = await fetch(`${s.url}/v1/ingest/webhook/${s.oid}/nope`, { method: 'POST', headers: { 'x-picket-secret': secret }, body: '{}' });
    expect(unknown.status).toBe(401);
    // A record without the mapped type is a `log` event.
    expect(await (await post('{}', { 'content-type': 'application/json', 'x-picket-secret': secret })).json()).toEqual({ accepted: 1 });

    const events = await waitFor(async () => {
      const list = (await timeline(sid)).filter((e) => e.routing.event_type !== 'CONNECTED' && e.routing.event_type !== 'enrollment');
      return list.length === 6 ? list : undefined;
    }, { message: 'six webhook events on the adapter timeline' });
    expect(events.map((e) => e.routing.event_type)).toEqual(['push', 'pull', 'pull', 'nd', 'nd', 'log']);
    expect(events[0]!.routing).toMatchObject({ sid, oid: s.oid, plat: PLATFORM.json, arch: ARCHITECTURE.usp_adapter, hostname: 'saas-hooks', event_time: Date.parse('2026-01-02T03:04:05Z') });
    expect(events[2]!.routing.hostname).toBe('laptop-7');
    expect(events.some((e) => e.event.kind === 'evil' || e.event.kind === 'half')).toBe(false);

    expect((await deployment()).filter((e) => e.routing.event_type === 'enrollment' && e.routing.sid === sid)).toHaveLength(1);

    // The adapter is a sensor of the organization in GET /v1/sensors/{oid}, with the list's usual fields.
    // It holds no live session (online state comes only from sessions), so it is listed offline; its
    // last-seen time (alive) is set when it delivers, and its health is in GET /v1/cloud_adapters.
    type Listed = Record<string, unknown> & { sid: string; is_online: boolean; alive_ts: number | null };
    const listed = await waitFor(async () => {
      const res = await api<{ sensors: Listed[] }>('GET', `/v1/sensors/${s.oid}`);
      expect(res.status).toBe(200);
      const found = res.body.sensors.find((x) => x.sid === sid);
      return found?.alive_ts ? found : undefined;
    }, { message: 'the adapter sensor listed with a last-seen time' });
    expect(listed).toMatchObject({
      sid, oid: s.oid, iid: '00000000-0000-0000-0000-000000000000', plat: PLATFORM.json, arch: ARCHITECTURE.usp_adapter, hostname: 'saas-hooks',
      is_online: false, state: 'offline', deleted: null, tags: [], isolated: false,
    });
    expect(ARCHITECTURE.usp_adapter).toBe(9);
    expect(listed.alive_ts).toBeGreaterThanOrEqual(startedAt);
    expect(listed.alive_ts).toBeLessThanOrEqual(Date.now());
    const single = await api<{ info: Record<string, unknown>; is_online: boolean; online: Record<string, unknown> }>('GET', `/v1/${sid}`);
    expect(single.status).toBe(200);
    expect(single.body).toMatchObject({ info: { sid, arch: ARCHITECTURE.usp_adapter, plat: PLATFORM.json, state: 'offline' }, is_online: false, online: {} });
    const onlineOnly = await api<{ sensors: Listed[] }>('GET', `/v1/sensors/${s.oid}?is_online_only=true`);
    expect(onlineOnly.body.sensors.map((x) => x.sid)).not.toContain(sid);
    expect((await adapter('hooks'))?.status).toMatchObject({ state: 'running', events: 6 });
  });

  it("a webhook adapter's events carry its sensor's tags as they are now: added, removed, and gone once their ttl has passed", async () => {
    let clock = Date.now();
    const s = await startTestServer({}, { now: () => clock });
    cleanups.push(() => rmSync(s.dataDir, { recursive: true, force: true }));
    cleanups.push(() => s.close({ keepData: true }));
    const { api, timeline, adapter } = helpers(s);
    const secret = 'webhook-secret-0123456789';
    expect((await api('POST', `/v1/cloud_adapters/${s.oid}`, { name: 'tagged', type: 'webhook', secret, mapping: { event_type_path: 'kind' } })).status).toBe(200);
    const sid = adapterSid(s.oid, 'cloud:tagged');
    await waitFor(async () => (await adapter('tagged'))?.status.state === 'running', { message: 'webhook running' });
    const post = async (kind: string): Promise<void> => {
      const res = await fetch(`${s.url}/v1/ingest/webhook/${s.oid}/tagged`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-picket-secret': secret }, body: JSON.stringify({ kind }) });
      expect(res.status).toBe(200);
    };
    const tagsOf = async (kind: string): Promise<unknown> => {
      const found = await waitFor(async () => (await timeline(sid)).find((e) => e.routing.event_type === kind), { message: `the ${kind} event` });
      return found.routing.tags;
    };

    await post('before');
    expect((await api('POST', `/v1/${sid}/tags`, { tags: ['saas', 'prod'] })).status).toBe(200);
    await post('tagged');
    expect((await api('POST', `/v1/${sid}/tags`, { tags: ['triage'], ttl: 60 })).status).toBe(200);
    await post('with_ttl');
    expect((await api('DELETE', `/v1/${sid}/tags?tag=prod`)).status).toBe(200);
    await post('removed');
    clock += 61_000;
    await post('expired');

    expect(await tagsOf('before')).toEqual([]);
    expect(await tagsOf('tagged')).toEqual(['prod', 'saas']);
    expect(await tagsOf('with_ttl')).toEqual(['prod', 'saas', 'triage']);
    expect(await tagsOf('removed')).toEqual(['saas', 'triage']);
    expect(await tagsOf('expired')).toEqual(['saas']);
    // What the API lists agrees with what the events carry.
    const listed = await api<{ tags: Record<string, Record<string, unknown>> }>('GET', `/v1/${sid}/tags`);
    expect(Object.keys(listed.body.tags[sid] ?? {})).toEqual(['saas']);

    // A tag added through another node's API is in the store only: the cluster's rebalance round reads it.
    await s.server.store.addSensorTags(sid, [{ tag: 'elsewhere', by: 'api:other-node', added: clock, expires: null }]);
    await s.server.cloudAdapters.refreshTags();
    await post('refreshed');
    expect(await tagsOf('refreshed')).toEqual(['elsewhere', 'saas']);
  });

  it('an HTTP poller delivers the records of a JSON API with its auth header, following its cursor, and resumes from it after a restart', async () => {
    const s = await server();
    const { api, timeline, adapter } = helpers(s);
    const { api: source, url } = await recordsApi();
    source.add(5);
    const created = await api<AdapterView>('POST', `/v1/cloud_adapters/${s.oid}`, {
      name: 'okta', type: 'http_poller', url, auth_header: 'X-Api-Key', auth_value: 'good-key', records_path: 'data/items',
      cursor_field: 'id', cursor_param: 'since', interval: 0.2, mapping: { event_type_path: 'kind', event_time_path: 'at' },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ auth_value: '********', auth_header: 'X-Api-Key', records_path: 'data/items' });
    const sid = created.body.sid;
    const logins = async () => (await timeline(sid)).filter((e) => e.routing.event_type === 'user_login');
    await waitFor(async () => (await logins()).length === 5, { message: 'five polled records' });
    // The fifth record is stored from the third page; the fourth request (nothing new) may still be on its way.
    await waitFor(() => source.requests.length >= 4, { message: 'the poll after the last page' });
    // Pages of two followed back to back: since=∅, 2, 4, then 5 (nothing new).
    expect(source.requests.slice(0, 4).map((r) => r.since)).toEqual([null, '2', '4', '5']);
    expect(source.requests.every((r) => r.key === 'good-key')).toBe(true);
    const first = (await logins())[0]!;
    expect(first.routing).toMatchObject({ plat: PLATFORM.json, arch: ARCHITECTURE.usp_adapter, hostname: 'okta', event_time: Date.parse('2026-01-01T00:00:01Z') });
    expect(first.event).toMatchObject({ id: 1, user: 'user1' });

    source.add(1);
    await waitFor(async () => (await logins()).length === 6, { message: 'a new record polled' });
    expect((await adapter('okta'))?.status).toMatchObject({ state: 'running', events: 6 });

    // Restart on the same data: the poller asks from its stored cursor and stores nothing twice.
    await s.close({ keepData: true });
    source.add(2);
    const before = source.requests.length;
    const s2 = await server(s.dataDir);
    const h2 = helpers(s2);
    await waitFor(async () => (await h2.timeline(sid)).filter((e) => e.routing.event_type === 'user_login').length === 8, { message: 'records after the restart' });
    expect(source.requests[before]?.since).toBe('6');
    const ids = (await h2.timeline(sid)).filter((e) => e.routing.event_type === 'user_login').map((e) => e.event.id);
    expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a poller answered 401 is disabled after its grace period with cloud_adapter_disabled, exactly once, and works again once fixed and re-enabled', async () => {
    const s = await server();
    const { api, timeline, deployment, adapter } = helpers(s);
    const { api: source, url } = await recordsApi();
    source.add(3);
    source.key = 'rotated-key';
    const startedAt = Date.now();
    const created = await api<AdapterView>('POST', `/v1/cloud_adapters/${s.oid}`, {
      name: 'audit', type: 'http_poller', url, auth_header: 'X-Api-Key', auth_value: 'good-key', records_path: 'data/items',
      cursor_field: 'id', cursor_param: 'since', interval: 0.1, grace_period: 0.6, mapping: { event_type_path: 'kind' },
    });
    expect(created.status).toBe(200);

    // While failing it retries (several requests) and its last error is readable.
    await waitFor(async () => (await adapter('audit'))?.status.state === 'retrying', { message: 'retrying' });
    const errors = await waitFor(async () => {
      const res = await api<{ errors: Array<{ component: string; error: string }> }>('GET', `/v1/errors/${s.oid}`);
      return res.body.errors.find((e) => e.component === 'cloud_adapters/audit');
    }, { message: 'the adapter error' });
    expect(errors.error).toContain('HTTP 401');

    const disabled = await waitFor(async () => {
      const view = await adapter('audit');
      return view?.enabled === false ? view : undefined;
    }, { message: 'the adapter disabled' });
    expect(disabled.status.state).toBe('disabled');
    // Not before its grace period of 0.6 s of failing.
    expect(Date.parse(disabled.disabled_at as string) - startedAt).toBeGreaterThanOrEqual(600);
    expect(disabled.disabled_error).toContain('invalid api key');
    expect(source.requests.length).toBeGreaterThan(1);

    const notices = await waitFor(async () => {
      const list = (await deployment()).filter((e) => e.routing.event_type === 'cloud_adapter_disabled');
      return list.length > 0 ? list : undefined;
    }, { message: 'cloud_adapter_disabled in the deployment stream' });
    expect(notices).toHaveLength(1);
    const notice = notices[0]!;
    expect(notice.event.error).toBe('HTTP 401 Unauthorized: {"error":"invalid api key"}');
    // The whole envelope, routing included, as the cloud produces it.
    expect(validateEvent(notice, { produced: true })).toEqual({ valid: true, known: true, errors: [] });
    expect(notice.routing).toMatchObject({ oid: s.oid, event_type: 'cloud_adapter_disabled' });
    expect(notice.routing.sid).toBeUndefined();

    const requestsWhenDisabled = source.requests.length;
    expect((await timeline(created.body.sid)).filter((e) => e.routing.event_type === 'user_login')).toHaveLength(0);

    // Fix the API, re-enable: it polls again and delivers; the disabled notice stays the only one.
    source.key = 'good-key';
    const enabled = await api<AdapterView>('POST', `/v1/cloud_adapters/${s.oid}/audit/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.body.enabled).toBe(true);
    await waitFor(async () => (await timeline(created.body.sid)).filter((e) => e.routing.event_type === 'user_login').length === 3, { message: 'records after re-enabling' });
    expect(source.requests.length).toBeGreaterThan(requestsWhenDisabled);
    await waitFor(async () => (await adapter('audit'))?.status.state === 'running', { message: 'running again' });
    const after = await api<{ errors: Array<{ component: string }> }>('GET', `/v1/errors/${s.oid}`);
    expect(after.body.errors.map((e) => e.component)).not.toContain('cloud_adapters/audit');
    expect((await deployment()).filter((e) => e.routing.event_type === 'cloud_adapter_disabled')).toHaveLength(1);
    expect((await api('POST', `/v1/cloud_adapters/${s.oid}/missing/enable`)).status).toBe(404);
  });

  it('a syslog listener receives what the system logger sends over UDP and TCP', async () => {
    const s = await server();
    const { api, timeline, adapter } = helpers(s);
    const udpPort = await freeUdpPort();
    const tcpPort = await freeTcpPort();
    for (const [name, protocol, port] of [['syslog-udp', 'udp', udpPort], ['syslog-tcp', 'tcp', tcpPort]] as const) {
      const res = await api<AdapterView>('POST', `/v1/cloud_adapters/${s.oid}`, { name, type: 'syslog', protocol, host: '127.0.0.1', port });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ platform: 'text', protocol, port });
      await waitFor(async () => (await adapter(name))?.status.state === 'running', { message: `${name} listening` });
    }
    const marker = crypto.randomUUID();
    await run('logger', ['-n', '127.0.0.1', '-P', String(udpPort), '-d', '-t', 'picket-test', `over udp ${marker}`]);
    await run('logger', ['-n', '127.0.0.1', '-P', String(tcpPort), '-T', '-t', 'picket-test', `over tcp ${marker}`]);

    for (const [name, text] of [['syslog-udp', 'over udp'], ['syslog-tcp', 'over tcp']] as const) {
      const sid = adapterSid(s.oid, `cloud:${name}`);
      const event = await waitFor(async () => (await timeline(sid)).find((e) => e.routing.event_type === 'syslog' && String(e.event.message).includes(marker)), { message: `${name} event` });
      expect(event.event).toMatchObject({ app_name: 'picket-test', message: `${text} ${marker}` });
      expect(event.routing).toMatchObject({ plat: PLATFORM.text, arch: ARCHITECTURE.usp_adapter, hostname: name });
    }
  });

  it('picket cloud-adapters add/list/enable/delete drive the same API, and bad definitions name their field', async () => {
    const s = await server();
    const { api } = helpers(s);
    const env = { PICKET_URL: s.url, PICKET_API_KEY: s.apiKey };
    const add = await runCli(['cloud-adapters', 'add', 'gh', '--type', 'webhook', '--set', 'secret=cli-secret-0123456789', '--mapping', 'event_type_path=action', '--grace-period', '120', '--json'], { env });
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ name: 'gh', type: 'webhook', secret: '********', grace_period: 120, mapping: { event_type_path: 'action' } });
    const list = await runCli(['cloud-adapters', 'list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as AdapterView[]).map((a) => a.name)).toEqual(['gh']);
    const enable = await runCli(['cloud-adapters', 'enable', 'gh', '--json'], { env });
    expect(enable.code, enable.stderr).toBe(0);
    expect(JSON.parse(enable.stdout)).toMatchObject({ enabled: true });
    const del = await runCli(['cloud-adapters', 'delete', 'gh', '--json'], { env });
    expect(JSON.parse(del.stdout)).toEqual({ deleted: true, name: 'gh' });
    const again = await runCli(['cloud-adapters', 'delete', 'gh'], { env });
    expect(again.code).not.toBe(0);

    const noUrl = await api<{ field: string; error: string }>('POST', `/v1/cloud_adapters/${s.oid}`, { name: 'p', type: 'http_poller' });
    expect(noUrl.status).toBe(400);
    expect(noUrl.body).toMatchObject({ field: 'url', error: expect.stringContaining('"url" is required') });
    const shortSecret = await api<{ field: string }>('POST', `/v1/cloud_adapters/${s.oid}`, { name: 'w', type: 'webhook', secret: 'short' });
    expect(shortSecret.body.field).toBe('secret');
    const badType = await api<{ field: string }>('POST', `/v1/cloud_adapters/${s.oid}`, { name: 'x', type: 'ftp' });
    expect(badType.body.field).toBe('type');
    expect((await api('GET', `/v1/cloud_adapters/${crypto.randomUUID()}`)).status).toBe(403);
  }, 90_000); // one Node process per CLI call: slow on a loaded 2-core machine
});
