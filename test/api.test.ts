// The REST API against a real server (real HTTP, real SQLite, sensors enrolled over a real socket):
// auth and roles, organization isolation, keys, sensors, tags, online state, timelines, error shapes.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../src/api/app.js';
import { Metrics } from '../src/observability/metrics.js';
import { Tasking } from '../src/services/tasking.js';
import { silentLogger } from '../src/observability/logger.js';
import type { Store } from '../src/store/store.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface ErrorJson {
  error: string;
  code: string;
  status: number;
  field?: string;
}
interface Envelope {
  routing: { event_type: string; event_time: number; event_id: string; sid: string; oid: string; tags: string[] };
  event: Record<string, unknown>;
}
interface Timeline {
  events: Envelope[];
  next_cursor: string | null;
}
interface SensorInfo {
  sid: string;
  oid: string;
  iid: string;
  hostname: string;
  plat: number;
  arch: number;
  enroll: string;
  enroll_ts: number;
  alive: string | null;
  alive_ts: number | null;
  tags: string[];
  deleted: string | null;
  deleted_ts: number | null;
  is_online?: boolean;
}
type TagMap = { tags: Record<string, Record<string, { tag: string; by: string; added: string; expires: string | null; expires_ts: number | null }>> };
type Api = ReturnType<typeof apiClient>;

async function enroll(url: string, installationKey: string, hostname: string): Promise<{ client: ProtocolClient; sid: string; secret: string }> {
  const client = new ProtocolClient(url);
  await client.hello({ installation_key: installationKey }, { host: { hostname } });
  const welcome = await client.welcome();
  return { client, sid: welcome.sid, secret: welcome.identity!.secret };
}

describe('REST API', () => {
  let t: TestServer;
  let root: Api;
  let sidA: string;
  let clientA: ProtocolClient;
  const clients: ProtocolClient[] = [];
  const base = Date.now() - 120_000;
  const startS = Math.floor(base / 1000) - 1;
  const endS = Math.ceil(Date.now() / 1000) + 600;

  /** Any request, with full control of headers and body. */
  async function raw(method: string, route: string, options: { key?: string | null; headers?: Record<string, string>; body?: string | Buffer } = {}) {
    const key = options.key === undefined ? t.apiKey : options.key;
    const res = await fetch(`${t.url}${route}`, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...options.headers },
      body: options.body,
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, contentType: res.headers.get('content-type') ?? '' };
  }

  const form = (route: string, method: string, body: string, key?: string) =>
    raw(method, route, { key, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });

  function expectError(res: { status: number; body: unknown }, status: number, code: string, field?: string): ErrorJson {
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    const body = res.body as ErrorJson;
    expect(body).toMatchObject({ code, status });
    expect(typeof body.error).toBe('string');
    expect(body.error.length).toBeGreaterThan(0);
    if (field !== undefined) expect(body.field).toBe(field);
    return body;
  }

  beforeAll(async () => {
    t = await startTestServer();
    root = apiClient(t.url, t.apiKey);
    const a = await enroll(t.url, t.installationKey, 'api-host-a');
    clientA = a.client;
    clients.push(a.client);
    sidA = a.sid;
    a.client.sendEvents(1, telemetry(25, 'NEW_PROCESS', base));
    a.client.sendEvents(2, telemetry(10, 'DNS_REQUEST', base + 1000));
    await a.client.waitForAck(2);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await t?.close();
  });

  describe('health, metrics and OpenAPI (no key)', () => {
    it('/healthz is 200 {status: ok}', async () => {
      const res = await raw('GET', '/healthz', { key: null });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ status: 'ok' });
    });

    it('/readyz is 200 while the node is ready and names the store', async () => {
      const res = await raw('GET', '/readyz', { key: null });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ status: 'ready', store: t.server.store.description });
      expect(t.server.store.description).toMatch(/^(sqlite|postgres):/);
    });

    it('/readyz is 503 NOT_READY with the reason while the node is not ready or the store does not answer', async () => {
      const base = { store: t.server.store, presence: t.server.registry, metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger(), config: t.server.config, emit: () => Promise.resolve(),
        tasking: new Tasking({ store: t.server.store, presence: t.server.registry, write: () => Promise.resolve(), logger: silentLogger(), now: Date.now }),
        outputs: t.server.outputs, cloudAdapters: t.server.cloudAdapters, live: t.server.live, upgrades: { add: () => undefined } };
      const starting = await buildApi({ ...base, readiness: () => ({ ready: false, reason: 'starting' }) });
      const res = await starting.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'not ready: starting', code: 'NOT_READY', status: 503, reason: 'starting' });
      expect((await starting.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      await starting.close();

      const brokenStore: Store = Object.create(t.server.store, { ping: { value: () => Promise.reject(new Error('disk on fire')) } }) as Store;
      const broken = await buildApi({ ...base, store: brokenStore, readiness: () => ({ ready: true }) });
      const res2 = await broken.inject({ method: 'GET', url: '/readyz' });
      expect(res2.statusCode).toBe(503);
      expect(res2.json()).toMatchObject({ code: 'NOT_READY', reason: 'store unavailable: disk on fire' });
      await broken.close();
    });

    it('/metrics is Prometheus text and counts API requests by method and status', async () => {
      await raw('GET', `/v1/orgs/${t.oid}`);
      await raw('GET', `/v1/orgs/${t.oid}`, { key: null });
      const res = await raw('GET', '/metrics', { key: null });
      expect(res.status).toBe(200);
      expect(res.contentType).toContain('text/plain');
      expect(res.text).toMatch(/picket_api_requests_total\{method="GET",status="200"\} \d+/);
      expect(res.text).toMatch(/picket_api_requests_total\{method="GET",status="401"\} \d+/);
      expect(res.text).toContain('picket_sensor_sessions');
    });

    it('/openapi.json documents every route with bearer auth, and /docs serves the UI', async () => {
      const res = await raw('GET', '/openapi.json', { key: null });
      expect(res.status).toBe(200);
      const doc = res.json as { openapi: string; paths: Record<string, Record<string, { security?: unknown[]; summary?: string; tags?: string[] }>>; components: { securitySchemes: Record<string, unknown> } };
      expect(doc.openapi).toMatch(/^3\./);
      expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
      for (const p of ['/v1/orgs', '/v1/orgs/{oid}', '/v1/orgs/{oid}/url', '/v1/orgs/{oid}/keys', '/v1/installationkeys/{oid}', '/v1/sensors/{oid}', '/v1/{sid}', '/v1/{sid}/tags', '/v1/online/{oid}', '/v1/insight/{oid}/{sid}', '/healthz', '/readyz', '/metrics']) {
        expect(doc.paths[p], p).toBeDefined();
      }
      for (const [p, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          expect(op.summary, `${method} ${p} summary`).toBeTruthy();
          expect(op.tags?.length, `${method} ${p} tags`).toBeGreaterThan(0);
          const isPublic = !p.startsWith('/v1/') || p === '/v1/orgs/{oid}/url' || p.startsWith('/v1/ingest/webhook/');
          if (isPublic) expect(op.security, `${method} ${p}`).toBeUndefined();
          else expect(op.security, `${method} ${p}`).toEqual([{ bearerAuth: [] }]);
        }
      }
      const ui = await fetch(`${t.url}/docs`, { redirect: 'follow' });
      expect(ui.status).toBe(200);
      expect(await ui.text()).toMatch(/swagger/i);
    });
  });

  describe('authentication and roles', () => {
    it('no key, a malformed header or a wrong key is 401 UNAUTHORIZED', async () => {
      const none = await raw('GET', `/v1/sensors/${t.oid}`, { key: null });
      expectError({ status: none.status, body: none.json }, 401, 'UNAUTHORIZED');
      const basic = await raw('GET', `/v1/sensors/${t.oid}`, { key: null, headers: { authorization: 'Basic abc' } });
      expectError({ status: basic.status, body: basic.json }, 401, 'UNAUTHORIZED');
      const [id] = t.apiKey.split('.');
      const wrongSecret = await raw('GET', `/v1/sensors/${t.oid}`, { key: `${id}.${'x'.repeat(32)}` });
      expectError({ status: wrongSecret.status, body: wrongSecret.json }, 401, 'UNAUTHORIZED');
      const unknown = await raw('GET', `/v1/sensors/${t.oid}`, { key: `${randomUUID()}.${'y'.repeat(32)}` });
      expectError({ status: unknown.status, body: unknown.json }, 401, 'UNAUTHORIZED');
      const garbage = await raw('GET', `/v1/sensors/${t.oid}`, { key: 'not-a-key' });
      expectError({ status: garbage.status, body: garbage.json }, 401, 'UNAUTHORIZED');
    });

    it('whoami names the key, its role and organization', async () => {
      const res = await root<{ key_id: string; role: string; oid: string }>('GET', '/v1/whoami');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ key_id: t.apiKey.split('.')[0], role: 'root', oid: t.oid });
    });

    it('a read key may GET but not change anything (403 FORBIDDEN)', async () => {
      const created = await root<{ key: string; key_id: string; role: string }>('POST', `/v1/orgs/${t.oid}/keys`, { name: 'reader', role: 'read' });
      expect(created.status).toBe(201);
      expect(created.body.role).toBe('read');
      const reader = apiClient(t.url, created.body.key);
      expect((await reader('GET', `/v1/sensors/${t.oid}`)).status).toBe(200);
      expect((await reader('GET', `/v1/${sidA}`)).status).toBe(200);
      expect((await reader('GET', `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}`)).status).toBe(200);
      expectError(await reader('POST', `/v1/installationkeys/${t.oid}`, { desc: 'nope' }), 403, 'FORBIDDEN');
      expectError(await reader('POST', `/v1/${sidA}/tags`, { tags: ['nope'] }), 403, 'FORBIDDEN');
      expectError(await reader('DELETE', `/v1/${sidA}`), 403, 'FORBIDDEN');
      expectError(await reader('POST', `/v1/orgs/${t.oid}/keys`, { name: 'escalate', role: 'admin' }), 403, 'FORBIDDEN');
      const info = await root<{ info: SensorInfo }>('GET', `/v1/${sidA}`);
      expect(info.body.info.deleted).toBeNull();
      expect(info.body.info.tags).not.toContain('nope');
    });

    it('API keys: listed without secrets, usable at once, dead once deleted; an admin cannot mint root keys', async () => {
      const created = await root<{ key: string; key_id: string; name: string; role: string; created: string }>('POST', `/v1/orgs/${t.oid}/keys`, { name: 'automation', role: 'admin' });
      expect(created.status).toBe(201);
      expect(created.body.key.startsWith(`${created.body.key_id}.`)).toBe(true);
      expect(new Date(created.body.created).toISOString()).toBe(created.body.created);
      const admin = apiClient(t.url, created.body.key);
      expect((await admin('GET', `/v1/orgs/${t.oid}`)).status).toBe(200);
      expectError(await admin('POST', `/v1/orgs/${t.oid}/keys`, { name: 'sneaky', role: 'root' }), 403, 'FORBIDDEN');
      expectError(await admin('POST', '/v1/orgs', { name: 'not allowed' }), 403, 'FORBIDDEN');

      const list = await root<{ keys: Array<Record<string, unknown>> }>('GET', `/v1/orgs/${t.oid}/keys`);
      expect(list.status).toBe(200);
      const names = list.body.keys.map((k) => k.name);
      expect(names).toContain('automation');
      expect(names).toContain('bootstrap-admin');
      for (const k of list.body.keys) {
        expect(Object.keys(k).sort()).toEqual(['created', 'created_ts', 'key_id', 'name', 'oid', 'role']);
      }
      expect(JSON.stringify(list.body)).not.toContain(created.body.key.split('.')[1]);

      const del = await root('DELETE', `/v1/orgs/${t.oid}/keys/${created.body.key_id}`);
      expect(del.status).toBe(200);
      expectError(await admin('GET', `/v1/orgs/${t.oid}`), 401, 'UNAUTHORIZED');
      expectError(await root('DELETE', `/v1/orgs/${t.oid}/keys/${created.body.key_id}`), 404, 'NOT_FOUND');
    });
  });

  describe('organizations', () => {
    it('GET /v1/orgs/{oid} gives the org with its sensor counts; GET /v1/orgs lists it', async () => {
      const res = await root<{ oid: string; name: string; quota: number | null; created: string; created_ts: number; sensors: number; online: number }>('GET', `/v1/orgs/${t.oid}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ oid: t.oid, name: 'default', quota: null });
      expect(res.body.sensors).toBeGreaterThanOrEqual(1);
      expect(res.body.online).toBeGreaterThanOrEqual(1);
      expect(Date.parse(res.body.created)).toBe(res.body.created_ts);
      const list = await root<{ orgs: Array<{ oid: string }> }>('GET', '/v1/orgs');
      expect(list.body.orgs.map((o) => o.oid)).toContain(t.oid);
    });

    it('GET /v1/orgs/{oid}/url needs no key and gives the API and sensor URLs', async () => {
      const res = await raw('GET', `/v1/orgs/${t.oid}/url`, { key: null });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ url: { api: t.url, sensor: `${t.url.replace(/^http/, 'ws')}/sensor` } });
    });
  });

  describe('installation keys', () => {
    it('create (JSON), list and get without secrets, enroll with it, delete, and enrolling again is refused', async () => {
      const created = await root<{ iid: string; key: string; desc: string; tags: string }>('POST', `/v1/installationkeys/${t.oid}`, { desc: 'lab machines', tags: ['lab', 'linux'] });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ desc: 'lab machines', tags: 'lab,linux' });
      expect(created.body.key.startsWith(`${created.body.iid}.`)).toBe(true);
      const secret = created.body.key.split('.')[1]!;

      const list = await root<Record<string, Record<string, { iid: string; desc: string; tags: string }>>>('GET', `/v1/installationkeys/${t.oid}`);
      expect(list.status).toBe(200);
      expect(Object.keys(list.body)).toEqual([t.oid]);
      expect(list.body[t.oid]![created.body.iid]).toMatchObject({ iid: created.body.iid, desc: 'lab machines', tags: 'lab,linux' });
      expect(JSON.stringify(list.body)).not.toContain(secret);
      const one = await root<{ iid: string }>('GET', `/v1/installationkeys/${t.oid}/${created.body.iid}`);
      expect(one.body.iid).toBe(created.body.iid);
      expect(JSON.stringify(one.body)).not.toContain(secret);

      const lab = await enroll(t.url, created.body.key, 'lab-01');
      clients.push(lab.client);
      const info = await root<{ info: SensorInfo }>('GET', `/v1/${lab.sid}`);
      expect(info.body.info.iid).toBe(created.body.iid);
      expect(info.body.info.tags).toEqual(['lab', 'linux']);

      const del = await root('DELETE', `/v1/installationkeys/${t.oid}`, { iid: created.body.iid });
      expect(del.status).toBe(200);
      expect(del.body).toEqual({ deleted: true, iid: created.body.iid });
      const refused = new ProtocolClient(t.url);
      await refused.hello({ installation_key: created.body.key });
      expect((await refused.closed).code).toBe(4003);
      expectError(await root('DELETE', `/v1/installationkeys/${t.oid}`, { iid: created.body.iid }), 404, 'NOT_FOUND');
      // The enrolled sensor keeps working.
      expect((await root<{ is_online: boolean }>('GET', `/v1/${lab.sid}`)).body.is_online).toBe(true);
    });

    it('create form-encoded with comma tags, delete with the iid in the query; a taken iid is 409', async () => {
      const res = await form(`/v1/installationkeys/${t.oid}`, 'POST', 'desc=from+a+form&tags=a,b');
      expect(res.status).toBe(201);
      const body = res.json as { iid: string; tags: string; desc: string };
      expect(body).toMatchObject({ desc: 'from a form', tags: 'a,b' });
      const dup = await root('POST', `/v1/installationkeys/${t.oid}`, { iid: body.iid, desc: 'again' });
      expectError(dup, 409, 'CONFLICT');
      const del = await raw('DELETE', `/v1/installationkeys/${t.oid}?iid=${body.iid}`);
      expect(del.status).toBe(200);
      const missing = await raw('DELETE', `/v1/installationkeys/${t.oid}`);
      expectError({ status: missing.status, body: missing.json }, 400, 'VALIDATION_FAILED', 'iid');
    });
  });

  describe('sensors', () => {
    it('list shows the enrolled sensor with online state, filters by hostname prefix and pages with continuation tokens', async () => {
      const b = await enroll(t.url, t.installationKey, 'api-host-b');
      clients.push(b.client);
      const res = await root<{ sensors: SensorInfo[]; continuation_token?: string }>('GET', `/v1/sensors/${t.oid}`);
      expect(res.status).toBe(200);
      const a = res.body.sensors.find((s) => s.sid === sidA)!;
      expect(a).toMatchObject({ sid: sidA, oid: t.oid, hostname: 'api-host-a', plat: 0x20000000, arch: 2, is_online: true, deleted: null });
      expect(res.body.continuation_token).toBeUndefined();

      const prefixed = await root<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${t.oid}?with_hostname_prefix=API-HOST`);
      expect(prefixed.body.sensors.map((s) => s.hostname).sort()).toEqual(['api-host-a', 'api-host-b']);
      const none = await root<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${t.oid}?with_hostname_prefix=zzz`);
      expect(none.body.sensors).toEqual([]);

      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await root<{ sensors: SensorInfo[]; continuation_token?: string }>('GET', `/v1/sensors/${t.oid}?limit=1${token ? `&continuation_token=${encodeURIComponent(token)}` : ''}`);
        expect(page.status).toBe(200);
        expect(page.body.sensors.length).toBeLessThanOrEqual(1);
        seen.push(...page.body.sensors.map((s) => s.sid));
        token = page.body.continuation_token;
        pages++;
      } while (token && pages < 50);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen.sort()).toEqual(res.body.sensors.map((s) => s.sid).sort());

      b.client.close();
      await waitFor(async () => !(await root<{ is_online: boolean }>('GET', `/v1/${b.sid}`)).body.is_online, { message: 'sensor b offline' });
      const online = await root<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${t.oid}?is_online_only=true&with_hostname_prefix=api-host`);
      expect(online.body.sensors.map((s) => s.sid)).toEqual([sidA]);
      const onlinePage = await root<{ sensors: SensorInfo[]; continuation_token?: string }>('GET', `/v1/sensors/${t.oid}?is_online_only=true&limit=1`);
      expect(onlinePage.body.sensors).toHaveLength(1);

      expectError(await root('GET', `/v1/sensors/${t.oid}?continuation_token=garbage`), 400, 'INVALID_CURSOR', 'continuation_token');
      expectError(await root('GET', `/v1/sensors/${t.oid}?limit=0`), 400, 'VALIDATION_FAILED', 'limit');
    });

    it('GET /v1/{sid} gives the record with ISO and ms times, is_online and the live session', async () => {
      const res = await root<{ info: SensorInfo & Record<string, unknown>; is_online: boolean; online: { connected_at?: string; ext_ip?: string } }>('GET', `/v1/${sidA}`);
      expect(res.status).toBe(200);
      const info = res.body.info;
      expect(info).toMatchObject({ sid: sidA, oid: t.oid, hostname: 'api-host-a', int_ip: '10.0.0.5', mac: '02-00-00-00-00-01', isolated: false, should_isolate: false, kernel: false, deleted: null, deleted_ts: null });
      expect(Date.parse(info.enroll)).toBe(info.enroll_ts);
      expect(info.enroll).toBe(new Date(info.enroll_ts).toISOString());
      expect(info.alive_ts).toBeGreaterThanOrEqual(info.enroll_ts);
      expect(Date.parse(info.alive!)).toBe(info.alive_ts);
      expect(info).not.toHaveProperty('secret_hash');
      expect(info).not.toHaveProperty('fingerprint');
      expect(res.body.is_online).toBe(true);
      expect(res.body.online.connected_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(res.body.online.ext_ip).toBeTruthy();
      expectError(await root('GET', `/v1/${randomUUID()}`), 404, 'NOT_FOUND');
      expectError(await root('GET', '/v1/not-a-sensor-id'), 404, 'NOT_FOUND');
    });

    it('tags: add with JSON (ttl) and form bodies, read, remove; routed events carry the new tags', async () => {
      // Stored before any tag was added.
      const untagged = await root<Timeline>('GET', `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}&event_type=NEW_PROCESS&limit=100`);
      expect(untagged.body.events).toHaveLength(25);
      expect(untagged.body.events.every((e) => e.routing.tags.length === 0)).toBe(true);

      const added = await root<TagMap>('POST', `/v1/${sidA}/tags`, { tags: ['web', 'prod'], ttl: 3600 });
      expect(added.status).toBe(200);
      const mine = added.body.tags[sidA]!;
      expect(Object.keys(mine).sort()).toEqual(['prod', 'web']);
      expect(mine.web!.by).toBe('api:bootstrap-admin');
      expect(mine.web!.expires_ts! - Date.now()).toBeGreaterThan(3500_000);

      const viaForm = await form(`/v1/${sidA}/tags`, 'POST', 'tags=blue,green');
      expect(viaForm.status).toBe(200);
      expect(Object.keys((viaForm.json as TagMap).tags[sidA]!).sort()).toEqual(['blue', 'green', 'prod', 'web']);
      const repeated = await form(`/v1/${sidA}/tags`, 'POST', 'tags=red&tags=yellow');
      expect(Object.keys((repeated.json as TagMap).tags[sidA]!)).toEqual(expect.arrayContaining(['red', 'yellow']));

      const got = await root<TagMap>('GET', `/v1/${sidA}/tags`);
      expect(Object.keys(got.body.tags[sidA]!).sort()).toEqual(['blue', 'green', 'prod', 'red', 'web', 'yellow']);
      expect((await root<{ info: SensorInfo }>('GET', `/v1/${sidA}`)).body.info.tags).toEqual(['blue', 'green', 'prod', 'red', 'web', 'yellow']);

      // Events routed after the change carry the tags.
      clientA.sendEvents(3, telemetry(1, 'TAGGED_EVENT'));
      await clientA.waitForAck(3);
      const tl = await root<Timeline>('GET', `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}&event_type=TAGGED_EVENT`);
      expect(tl.body.events[0]!.routing.tags).toEqual(expect.arrayContaining(['web', 'prod', 'blue', 'green']));

      const removedQuery = await raw('DELETE', `/v1/${sidA}/tags?tags=blue,green`);
      expect(removedQuery.status).toBe(200);
      const removedBody = await root<TagMap>('DELETE', `/v1/${sidA}/tags`, { tag: 'web' });
      expect(Object.keys(removedBody.body.tags[sidA]!).sort()).toEqual(['prod', 'red', 'yellow']);
      const removedForm = await form(`/v1/${sidA}/tags`, 'DELETE', 'tags=red,yellow,prod');
      expect((removedForm.json as TagMap).tags[sidA]).toEqual({});

      expectError(await root('POST', `/v1/${sidA}/tags`, { tags: ['has space'] }), 400, 'VALIDATION_FAILED', 'tags');
      expectError(await root('POST', `/v1/${sidA}/tags`, { tags: [] }), 400, 'VALIDATION_FAILED', 'tags');
      expectError(await root('POST', `/v1/${sidA}/tags`, {}), 400, 'VALIDATION_FAILED', 'tags');
      expectError(await root('POST', `/v1/${sidA}/tags`, { tags: 'x', ttl: 0 }), 400, 'VALIDATION_FAILED', 'ttl');
      expectError(await root('DELETE', `/v1/${sidA}/tags`), 400, 'VALIDATION_FAILED', 'tags');
    });

    it('tags are a snapshot taken when an event is routed: stored events keep the tags they were stored with', async () => {
      const timeline = async (type: string) =>
        (await root<Timeline>('GET', `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}&event_type=${type}&limit=100`)).body.events;
      await root('POST', `/v1/${sidA}/tags`, { tags: ['before'] });
      clientA.sendEvents(4, telemetry(2, 'SNAPSHOT_BEFORE'));
      await clientA.waitForAck(4);
      const removed = await root<TagMap>('DELETE', `/v1/${sidA}/tags`, { tags: ['before'] });
      expect(removed.body.tags[sidA]).toEqual({});
      await root('POST', `/v1/${sidA}/tags`, { tags: ['after'] });
      clientA.sendEvents(5, telemetry(2, 'SNAPSHOT_AFTER'));
      await clientA.waitForAck(5);

      // Events stored before a change keep their old tags, whatever the sensor's tags are now.
      const earlier = await timeline('SNAPSHOT_BEFORE');
      expect(earlier).toHaveLength(2);
      for (const e of earlier) expect(e.routing.tags).toEqual(['before']);
      expect((await timeline('NEW_PROCESS')).every((e) => e.routing.tags.length === 0)).toBe(true);
      const tagged = await timeline('TAGGED_EVENT');
      expect(tagged[0]!.routing.tags).toEqual(expect.arrayContaining(['web', 'prod', 'blue', 'green']));
      // Events stored after it carry the new tags only.
      const later = await timeline('SNAPSHOT_AFTER');
      expect(later).toHaveLength(2);
      for (const e of later) expect(e.routing.tags).toEqual(['after']);
      await root('DELETE', `/v1/${sidA}/tags`, { tags: ['after'] });
    });

    it('online: count of the org, and a per-sid map (JSON or form)', async () => {
      const count = await root<{ count: number }>('GET', `/v1/online/${t.oid}`);
      expect(count.status).toBe(200);
      expect(count.body.count).toBe(t.server.registry.onlineCount(t.oid));
      const stranger = randomUUID();
      const map = await root<Record<string, boolean>>('POST', `/v1/online/${t.oid}`, { sids: [sidA, stranger] });
      expect(map.body).toEqual({ [sidA]: true, [stranger]: false });
      const viaForm = await form(`/v1/online/${t.oid}`, 'POST', `sids=${sidA}&sids=${stranger}`);
      expect(viaForm.json).toEqual({ [sidA]: true, [stranger]: false });
    });

    it('DELETE /v1/{sid} marks it deleted, closes its session, hides it from the list; it is refused when it comes back', async () => {
      const c = await enroll(t.url, t.installationKey, 'doomed-host');
      clients.push(c.client);
      const del = await root<{ deleted: boolean; disconnected: boolean }>('DELETE', `/v1/${c.sid}`);
      expect(del.status).toBe(200);
      expect(del.body).toMatchObject({ deleted: true, disconnected: true });
      expect((await c.client.closed).code).toBe(4011);
      const info = await root<{ info: SensorInfo; is_online: boolean }>('GET', `/v1/${c.sid}`);
      expect(info.body.info.deleted).toBe(new Date(info.body.info.deleted_ts!).toISOString());
      expect(info.body.is_online).toBe(false);
      const list = await root<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${t.oid}`);
      expect(list.body.sensors.map((s) => s.sid)).not.toContain(c.sid);
      const all = await root<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${t.oid}?include_deleted=true`);
      expect(all.body.sensors.map((s) => s.sid)).toContain(c.sid);
      const again = new ProtocolClient(t.url);
      await again.hello({ sid: c.sid, secret: c.secret });
      expect((await again.closed).code).toBe(4011);
    });
  });

  describe('insight (timelines)', () => {
    const q = (extra: string) => `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}${extra}`;

    it('pages through an event type with cursors, in order, without gaps or repeats', async () => {
      const seen: Envelope[] = [];
      let cursor: string | null = '-';
      let pages = 0;
      while (cursor !== null && pages < 10) {
        const res: { status: number; body: Timeline } = await root<Timeline>('GET', q(`&event_type=NEW_PROCESS&limit=10&cursor=${encodeURIComponent(cursor)}`));
        expect(res.status).toBe(200);
        seen.push(...res.body.events);
        cursor = res.body.next_cursor;
        pages++;
      }
      expect(pages).toBe(3);
      expect(seen).toHaveLength(25);
      expect(new Set(seen.map((e) => e.routing.event_id)).size).toBe(25);
      expect(seen.every((e) => e.routing.event_type === 'NEW_PROCESS' && e.routing.sid === sidA && e.routing.oid === t.oid)).toBe(true);
      const times = seen.map((e) => e.routing.event_time);
      expect(times).toEqual([...times].sort((x, y) => x - y));
      expect(seen[0]!.event.FILE_PATH).toBe('/usr/bin/proc-0');
    });

    it('is_forward=false returns newest first; event_type filters; an empty range is empty', async () => {
      const back = await root<Timeline>('GET', q('&event_type=NEW_PROCESS&limit=5&is_forward=false'));
      const times = back.body.events.map((e) => e.routing.event_time);
      expect(times).toEqual([...times].sort((x, y) => y - x));
      expect(back.body.events[0]!.event.FILE_PATH).toBe('/usr/bin/proc-24');
      expect(back.body.next_cursor).not.toBeNull();
      const dns = await root<Timeline>('GET', q('&event_type=DNS_REQUEST&limit=100'));
      expect(dns.body.events).toHaveLength(10);
      expect(dns.body.next_cursor).toBeNull();
      const all = await root<Timeline>('GET', q('&limit=10000'));
      expect(all.body.events.length).toBeGreaterThanOrEqual(35);
      const types = new Set(all.body.events.map((e) => e.routing.event_type));
      expect(types).toContain('CONNECTED');
      expect(types).toContain('enrollment');
      const empty = await root<Timeline>('GET', `/v1/insight/${t.oid}/${sidA}?start=1000&end=2000`);
      expect(empty.body).toEqual({ events: [], next_cursor: null });
    });

    it('the body is the stored JSON, byte for byte', async () => {
      const page = await t.server.store.queryTimeline({ oid: t.oid, sid: sidA, start: startS * 1000, end: endS * 1000 + 999, eventType: 'DNS_REQUEST', limit: 3 });
      const res = await raw('GET', q('&event_type=DNS_REQUEST&limit=3'));
      expect(res.contentType).toContain('application/json');
      expect(res.text.startsWith(`{"events":[${page.events.join(',')}],"next_cursor":`)).toBe(true);
    });

    it('rejects bad parameters with 400 naming the parameter', async () => {
      expectError(await root('GET', `/v1/insight/${t.oid}/${sidA}?start=100&end=50`), 400, 'VALIDATION_FAILED', 'start');
      expectError(await root('GET', `/v1/insight/${t.oid}/${sidA}?end=50`), 400, 'VALIDATION_FAILED', 'start');
      expectError(await root('GET', `/v1/insight/${t.oid}/${sidA}?start=0`), 400, 'VALIDATION_FAILED', 'end');
      expectError(await root('GET', q('&limit=10001')), 400, 'VALIDATION_FAILED', 'limit');
      expectError(await root('GET', q('&limit=abc')), 400, 'VALIDATION_FAILED', 'limit');
      expectError(await root('GET', `/v1/insight/${t.oid}/${sidA}?start=-5&end=10`), 400, 'VALIDATION_FAILED', 'start');
      expectError(await root('GET', q('&event_type=bad%20type')), 400, 'VALIDATION_FAILED', 'event_type');
      expectError(await root('GET', q('&cursor=not-a-cursor')), 400, 'INVALID_CURSOR', 'cursor');
      expectError(await root('GET', q('&is_forward=sideways')), 400, 'VALIDATION_FAILED', 'is_forward');
      expectError(await root('GET', `/v1/insight/${t.oid}/${randomUUID()}?start=0&end=10`), 404, 'NOT_FOUND');
    });
  });

  describe('organization isolation', () => {
    let other: Api;
    let otherOid: string;

    beforeAll(async () => {
      const res = await root<{ oid: string; name: string; api_key: string; installation_key: string; iid: string; key_id: string }>('POST', '/v1/orgs', { name: 'second org', quota: 5 });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ name: 'second org', quota: 5 });
      otherOid = res.body.oid;
      other = apiClient(t.url, res.body.api_key);
      const who = await other<{ oid: string; role: string }>('GET', '/v1/whoami');
      expect(who.body).toMatchObject({ oid: otherOid, role: 'admin' });
    });

    it('a second org name already taken is 409 CONFLICT', async () => {
      expectError(await root('POST', '/v1/orgs', { name: 'Second Org' }), 409, 'CONFLICT');
    });

    it("the other org's admin gets 403 on every {oid} path of the first org", async () => {
      const paths: Array<[string, string, unknown?]> = [
        ['GET', `/v1/orgs/${t.oid}`],
        ['GET', `/v1/orgs/${t.oid}/keys`],
        ['POST', `/v1/orgs/${t.oid}/keys`, { name: 'intruder', role: 'admin' }],
        ['DELETE', `/v1/orgs/${t.oid}/keys/${t.apiKey.split('.')[0]}`],
        ['GET', `/v1/sensors/${t.oid}`],
        ['GET', `/v1/installationkeys/${t.oid}`],
        ['POST', `/v1/installationkeys/${t.oid}`, { desc: 'intruder' }],
        ['DELETE', `/v1/installationkeys/${t.oid}`, { iid: randomUUID() }],
        ['GET', `/v1/online/${t.oid}`],
        ['POST', `/v1/online/${t.oid}`, { sids: [sidA] }],
        ['GET', `/v1/insight/${t.oid}/${sidA}?start=${startS}&end=${endS}`],
      ];
      for (const [method, route, body] of paths) {
        const res = await other(method, route, body);
        expect(res.status, `${method} ${route}`).toBe(403);
        expect(res.body).toMatchObject({ code: 'FORBIDDEN', status: 403 });
      }
    });

    it("the other org's admin gets 404 on every {sid} path of the first org's sensor", async () => {
      const paths: Array<[string, string, unknown?]> = [
        ['GET', `/v1/${sidA}`],
        ['DELETE', `/v1/${sidA}`],
        ['GET', `/v1/${sidA}/tags`],
        ['POST', `/v1/${sidA}/tags`, { tags: ['pwned'] }],
        ['DELETE', `/v1/${sidA}/tags?tags=prod`],
        ['GET', `/v1/insight/${otherOid}/${sidA}?start=${startS}&end=${endS}`],
      ];
      for (const [method, route, body] of paths) {
        const res = await other(method, route, body);
        expect(res.status, `${method} ${route}`).toBe(404);
        expect(res.body).toMatchObject({ code: 'NOT_FOUND', status: 404 });
        // Same answer as a sensor that does not exist at all.
        const ghost = await other(method, route.replace(sidA, randomUUID()), body);
        expect(ghost.status).toBe(404);
      }
      const online = await other<Record<string, boolean>>('POST', `/v1/online/${otherOid}`, { sids: [sidA] });
      expect(online.body).toEqual({ [sidA]: false });
    });

    it("the other org's admin cannot undelete, re-enroll or reconnect the first org's sensors (404), and nothing changes", async () => {
      const doomed = await enroll(t.url, t.installationKey, 'isolation-deleted');
      clients.push(doomed.client);
      expect((await root('DELETE', `/v1/${doomed.sid}`)).status).toBe(200);
      await doomed.client.closed;
      const attempts: Array<[string, unknown?]> = [
        [`/v1/${doomed.sid}/undelete`],
        [`/v1/${sidA}/undelete`],
        [`/v1/${sidA}/reenroll`],
        [`/v1/${sidA}/reenroll`, { hostname: 'api-host-a' }],
        [`/v1/${sidA}/reconnect`],
      ];
      for (const [route, body] of attempts) {
        const res = await other('POST', route, body);
        expect(res.status, `POST ${route}`).toBe(404);
        expect(res.body).toMatchObject({ code: 'NOT_FOUND', status: 404 });
      }
      // The same requests from the sensors' own organization do act (here: a re-enroll with no body at all).
      const copy = await enroll(t.url, t.installationKey, 'isolation-copy');
      clients.push(copy.client);
      expectError(await other('POST', `/v1/${copy.sid}/reenroll`), 404, 'NOT_FOUND');
      expect(copy.client.ws.readyState).toBe(copy.client.ws.OPEN);
      const own = await root<{ delivered: boolean }>('POST', `/v1/${copy.sid}/reenroll`);
      expect(own.status, JSON.stringify(own.body)).toBe(200);
      expect(own.body.delivered).toBe(true);
      expect((await copy.client.closed).code).toBe(4012);
      // Still deleted, and still refused when it comes back.
      const d = await root<{ info: SensorInfo & { state: string } }>('GET', `/v1/${doomed.sid}`);
      expect(d.body.info.deleted).not.toBeNull();
      expect(d.body.info.state).toBe('deleted');
      const back = new ProtocolClient(t.url);
      await back.hello({ sid: doomed.sid, secret: doomed.secret });
      expect((await back.closed).code).toBe(4011);
      // No re-enroll order was placed, and the live session was neither re-enrolled nor asked to reconnect:
      // a batch sent now on the same socket is still acknowledged (a close frame would have come first).
      const a = await root<{ info: SensorInfo & { reenroll_order: unknown }; is_online: boolean }>('GET', `/v1/${sidA}`);
      expect(a.body.info.reenroll_order).toBeNull();
      expect(a.body.is_online).toBe(true);
      clientA.sendEvents(6, telemetry(1, 'STILL_HERE'));
      await clientA.waitForAck(6);
      expect(clientA.ws.readyState).toBe(clientA.ws.OPEN);
      expect(clientA.messages.filter((m) => m.t === 'error')).toEqual([]);
    });

    it("the other org's admin naming the first org's key ids under its own oid is refused, and the keys keep working", async () => {
      const iidA = t.installationKey.split('.')[0]!;
      const adminA = await root<{ key: string; key_id: string }>('POST', `/v1/orgs/${t.oid}/keys`, { name: 'isolation-admin', role: 'admin' });
      expect(adminA.status).toBe(201);

      expectError(await other('DELETE', `/v1/installationkeys/${otherOid}`, { iid: iidA }), 404, 'NOT_FOUND');
      const viaQuery = await other('DELETE', `/v1/installationkeys/${otherOid}?iid=${iidA}`);
      expectError(viaQuery, 404, 'NOT_FOUND');
      expectError(await other('GET', `/v1/installationkeys/${otherOid}/${iidA}`), 404, 'NOT_FOUND');
      expectError(await other('DELETE', `/v1/orgs/${otherOid}/keys/${adminA.body.key_id}`), 404, 'NOT_FOUND');
      expectError(await other('DELETE', `/v1/orgs/${otherOid}/keys/${t.apiKey.split('.')[0]!}`), 404, 'NOT_FOUND');

      // The first org's installation key is still listed and still enrolls sensors.
      const ik = await root<Record<string, Record<string, unknown>>>('GET', `/v1/installationkeys/${t.oid}`);
      expect(Object.keys(ik.body[t.oid]!)).toContain(iidA);
      const fresh = await enroll(t.url, t.installationKey, 'isolation-still-enrolls');
      clients.push(fresh.client);
      expect((await root<{ info: SensorInfo }>('GET', `/v1/${fresh.sid}`)).body.info.oid).toBe(t.oid);
      // Its API keys are still listed and still authenticate.
      const keys = await root<{ keys: Array<{ key_id: string }> }>('GET', `/v1/orgs/${t.oid}/keys`);
      expect(keys.body.keys.map((k) => k.key_id)).toEqual(expect.arrayContaining([adminA.body.key_id, t.apiKey.split('.')[0]!]));
      expect((await apiClient(t.url, adminA.body.key)('GET', '/v1/whoami')).status).toBe(200);
      expect((await root('GET', '/v1/whoami')).status).toBe(200);
    });

    it('sees only its own organization, sensors and keys, and nothing of the first org changed', async () => {
      const orgs = await other<{ orgs: Array<{ oid: string }> }>('GET', '/v1/orgs');
      expect(orgs.body.orgs.map((o) => o.oid)).toEqual([otherOid]);
      expect((await other<{ sensors: unknown[] }>('GET', `/v1/sensors/${otherOid}`)).body.sensors).toEqual([]);
      const keys = await other<{ keys: Array<{ oid: string }> }>('GET', `/v1/orgs/${otherOid}/keys`);
      expect(keys.body.keys.every((k) => k.oid === otherOid)).toBe(true);
      const ikeys = await other<Record<string, Record<string, unknown>>>('GET', `/v1/installationkeys/${otherOid}`);
      expect(Object.keys(ikeys.body)).toEqual([otherOid]);
      expect(Object.keys(ikeys.body[otherOid]!)).toHaveLength(1);
      // A root key lists every organization but still cannot read the other org's data.
      const all = await root<{ orgs: Array<{ oid: string }> }>('GET', '/v1/orgs');
      expect(all.body.orgs.map((o) => o.oid).sort()).toEqual([t.oid, otherOid].sort());
      expectError(await root('GET', `/v1/sensors/${otherOid}`), 403, 'FORBIDDEN');

      const a = await root<{ info: SensorInfo; is_online: boolean }>('GET', `/v1/${sidA}`);
      expect(a.body.info.deleted).toBeNull();
      expect(a.body.info.tags).not.toContain('pwned');
      expect(a.body.is_online).toBe(true);
      const rootKeys = await root<{ keys: Array<{ name: string }> }>('GET', `/v1/orgs/${t.oid}/keys`);
      expect(rootKeys.body.keys.map((k) => k.name)).not.toContain('intruder');
      const ik = await root<Record<string, Record<string, { desc: string }>>>('GET', `/v1/installationkeys/${t.oid}`);
      expect(Object.values(ik.body[t.oid]!).map((k) => k.desc)).not.toContain('intruder');
      expect((await root('GET', `/v1/whoami`)).status).toBe(200);
    });

    it('a sensor enrolled with the second org key belongs to it only', async () => {
      const created = await other<{ key: string }>('POST', `/v1/installationkeys/${otherOid}`, { desc: 'second' });
      const s = await enroll(t.url, created.body.key, 'second-host');
      clients.push(s.client);
      const list = await other<{ sensors: SensorInfo[] }>('GET', `/v1/sensors/${otherOid}`);
      expect(list.body.sensors.map((x) => x.sid)).toEqual([s.sid]);
      expectError(await root('GET', `/v1/${s.sid}`), 404, 'NOT_FOUND');
      expect((await other<{ count: number }>('GET', `/v1/online/${otherOid}`)).body.count).toBe(1);
    });
  });

  describe('error responses', () => {
    it('unknown routes are 404 JSON', async () => {
      const res = await raw('GET', '/nope/nothing');
      expect(res.status).toBe(404);
      expect(res.json).toMatchObject({ code: 'NOT_FOUND', status: 404, error: expect.stringContaining('/nope/nothing') });
      const v1 = await raw('GET', `/v1/${sidA}/unknown-thing`);
      expect(v1.status).toBe(404);
      expect(v1.json).toMatchObject({ code: 'NOT_FOUND', status: 404 });
    });

    it('a missing or invalid field is 400 naming it', async () => {
      expectError(await root('POST', `/v1/orgs/${t.oid}/keys`, { role: 'admin' }), 400, 'VALIDATION_FAILED', 'name');
      const role = expectError(await root('POST', `/v1/orgs/${t.oid}/keys`, { name: 'x', role: 'superuser' }), 400, 'VALIDATION_FAILED', 'role');
      expect(role.error).toContain('role');
      expectError(await root('POST', '/v1/orgs', { name: 'q', quota: -1 }), 400, 'VALIDATION_FAILED', 'quota');
    });

    it('a body that is not JSON is 400 INVALID_BODY', async () => {
      const res = await raw('POST', `/v1/orgs/${t.oid}/keys`, { headers: { 'content-type': 'application/json' }, body: '{"name": ' });
      expectError({ status: res.status, body: res.json }, 400, 'INVALID_BODY');
    });

    it('an unsupported content type is 415', async () => {
      const res = await raw('POST', `/v1/orgs/${t.oid}/keys`, { headers: { 'content-type': 'text/plain' }, body: 'name=x' });
      expectError({ status: res.status, body: res.json }, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('a body over the limit is 413', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(1_100_000) });
      const res = await raw('POST', `/v1/orgs/${t.oid}/keys`, { headers: { 'content-type': 'application/json' }, body: big });
      expectError({ status: res.status, body: res.json }, 413, 'PAYLOAD_TOO_LARGE');
    });
  });
});
