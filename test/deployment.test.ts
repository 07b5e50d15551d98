// Deployment guards (decisions.md §3) over the real sensor protocol: quota with a growing retry-after and
// no race, deleted sensors refused and reported once per window, clones detected and re-enrolled, crash
// reports turned into exactly one sensor_crash. The server runs with an injectable clock (an offset on
// real time) so that the 10-minute, 24-hour and 30-day windows can be crossed without waiting.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { CloseCode } from '../src/protocol/close-codes.js';
import type { ErrorMessage, HostInfo, WelcomeMessage } from '../src/protocol/messages.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; event_time: number; sid?: string; oid: string };
  event: Record<string, unknown>;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const FAR_S = 9_999_999_999;

describe('deployment guards', () => {
  let t: TestServer;
  let api: ReturnType<typeof apiClient>;
  let offset = 0;
  const clients: ProtocolClient[] = [];

  beforeEach(async () => {
    offset = 0;
    t = await startTestServer({}, { now: () => Date.now() + offset });
    api = apiClient(t.url, t.apiKey);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await t.close();
  });

  /** A protocol client that has sent its hello (enrolling when `auth` is omitted). */
  async function connect(auth?: { sid: string; secret: string }, host: Partial<HostInfo> = {}): Promise<ProtocolClient> {
    const client = new ProtocolClient(t.url);
    clients.push(client);
    await client.hello(auth ?? { installation_key: t.installationKey }, { host });
    return client;
  }

  /** Waits until the session is welcomed or closed; returns which, with the error message before a close. */
  async function outcome(client: ProtocolClient): Promise<{ welcome?: WelcomeMessage; code?: number; error?: ErrorMessage }> {
    await waitFor(() => client.messages.some((m) => m.t === 'welcome') || client.ws.readyState === client.ws.CLOSED, { message: 'welcome or close' });
    const welcome = client.messages.find((m): m is WelcomeMessage => m.t === 'welcome');
    if (welcome) return { welcome };
    const closed = await client.closed;
    return { code: closed.code, error: client.messages.find((m): m is ErrorMessage => m.t === 'error') };
  }

  async function enrolled(hostname: string, fingerprint = `fp-${hostname}`): Promise<{ client: ProtocolClient; sid: string; secret: string }> {
    const client = await connect(undefined, { hostname, fingerprint });
    const { welcome } = await outcome(client);
    expect(welcome?.identity).toBeDefined();
    return { client, sid: welcome!.sid, secret: welcome!.identity!.secret };
  }

  async function deploymentStream(): Promise<Envelope[]> {
    const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${t.oid}/stream/deployment?start=0&end=${FAR_S}&limit=10000`);
    expect(res.status).toBe(200);
    return res.body.events;
  }

  async function timeline(sid: string, type?: string): Promise<Envelope[]> {
    const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${t.oid}/${sid}?start=0&end=${FAR_S}&limit=10000${type ? `&event_type=${type}` : ''}`);
    expect(res.status).toBe(200);
    return res.body.events;
  }

  /** Every deployment event is stored once, validates against the catalogue, and is in the deployment stream. */
  async function expectValidDeploymentEvents(types: string[]): Promise<Envelope[]> {
    await t.server.writer.drain();
    const stream = await deploymentStream();
    for (const e of stream) {
      const check = validateEvent(e, { produced: true });
      expect(check.errors, `${e.routing.event_type}: ${JSON.stringify(check.errors)}`).toEqual([]);
    }
    for (const type of types) expect(stream.map((e) => e.routing.event_type)).toContain(type);
    return stream;
  }

  async function setQuota(quota: number | null | string): Promise<{ old_quota: number | null; new_quota: number | null; changed: boolean }> {
    const res = await api<{ old_quota: number | null; new_quota: number | null; changed: boolean }>('POST', `/v1/orgs/${t.oid}/quota`, { quota });
    expect(res.status).toBe(200);
    return res.body;
  }

  describe('quota', () => {
    it('refuses the third sensor at quota 2 with a growing retry-after, reports it once per 10 minutes, and lets it in when raised', async () => {
      expect(await setQuota(2)).toEqual({ oid: t.oid, old_quota: null, new_quota: 2, changed: true });
      await enrolled('q-1');
      await enrolled('q-2');

      // The third enrolls (it exists now) but is refused, keeping its identity from the error message.
      const third = await connect(undefined, { hostname: 'q-3', int_ip: '10.9.8.7' });
      const first = await outcome(third);
      expect(first.code).toBe(CloseCode.overQuota);
      expect(first.error).toMatchObject({ code: CloseCode.overQuota, retry_after_s: 0.2 });
      expect(first.error!.message).toMatch(/quota of 2 sensors.*retry-after=0\.2/);
      const identity = first.error!.identity!;
      expect(identity.sid).toMatch(/^[0-9a-f-]{36}$/);
      const auth = { sid: identity.sid, secret: identity.secret };

      const retries: number[] = [];
      for (let i = 0; i < 3; i++) {
        const again = await outcome(await connect(auth, { hostname: 'q-3', int_ip: '10.9.8.7' }));
        expect(again.code).toBe(CloseCode.overQuota);
        retries.push(again.error!.retry_after_s!);
      }
      expect(retries).toEqual([0.4, 0.8, 1.6]);
      // The cap (2 s in tests) holds.
      expect((await outcome(await connect(auth, { hostname: 'q-3' }))).error!.retry_after_s).toBe(2);

      let overQuota = await timeline(identity.sid, 'sensor_over_quota');
      expect(overQuota).toHaveLength(1);
      expect(overQuota[0]!.event).toEqual({ public_ip: '127.0.0.1', internal_ip: '10.9.8.7', host_name: 'q-3' });
      expect(overQuota[0]!.routing).toMatchObject({ oid: t.oid, sid: identity.sid, hostname: 'q-3', ext_ip: '127.0.0.1', int_ip: '10.9.8.7', plat: 0x20000000, arch: 2 });
      expect((await timeline(identity.sid, 'enrollment'))).toHaveLength(1);

      // The operator sees why.
      const info = await api<{ info: { state: string; state_reason: string; last_issue: { kind: string } } }>('GET', `/v1/${identity.sid}`);
      expect(info.body.info).toMatchObject({ state: 'refused', last_issue: { kind: 'over_quota' } });
      expect(info.body.info.state_reason).toMatch(/quota of 2 sensors/);

      // Past the 10-minute window a refusal is reported again.
      offset += 10 * MINUTE + 1000;
      expect((await outcome(await connect(auth, { hostname: 'q-3' }))).code).toBe(CloseCode.overQuota);
      overQuota = await timeline(identity.sid, 'sensor_over_quota');
      expect(overQuota).toHaveLength(2);

      expect(await setQuota(3)).toMatchObject({ old_quota: 2, new_quota: 3, changed: true });
      const admitted = await outcome(await connect(auth, { hostname: 'q-3' }));
      expect(admitted.welcome?.sid).toBe(identity.sid);
      expect(t.server.registry.onlineCount(t.oid)).toBe(3);

      // Lowering the quota disconnects nobody.
      expect(await setQuota('1')).toMatchObject({ old_quota: 3, new_quota: 1 });
      const usage = await api<{ usage: number; quota: number; breakdown: Record<string, { count: number; weight: number; quota: number }> }>('GET', `/v1/quota_usage/${t.oid}`);
      expect(usage.body).toEqual({ usage: 3, quota: 1, breakdown: { linux: { count: 3, weight: 1, quota: 3 } } });
      expect(clients.filter((c) => c.ws.readyState === c.ws.OPEN)).toHaveLength(3);

      // Same value: no event.
      expect(await setQuota(1)).toMatchObject({ changed: false });
      expect(await setQuota('unlimited')).toMatchObject({ old_quota: 1, new_quota: null });

      const stream = await expectValidDeploymentEvents(['quota_changed', 'sensor_over_quota', 'enrollment']);
      const changes = stream.filter((e) => e.routing.event_type === 'quota_changed').map((e) => e.event);
      expect(changes).toEqual([
        { old_quota: null, new_quota: 2 },
        { old_quota: 2, new_quota: 3 },
        { old_quota: 3, new_quota: 1 },
        { old_quota: 1, new_quota: null },
      ]);
      const quotaChanged = stream.find((e) => e.routing.event_type === 'quota_changed')!;
      expect(Object.keys(quotaChanged.routing).sort()).toEqual(['event_id', 'event_time', 'event_type', 'oid']);
    });

    it('rejects a bad quota with a clear 400, an unknown org with 404, and a non-root key with 403', async () => {
      const bad = await api<{ error: string; field: string }>('POST', `/v1/orgs/${t.oid}/quota`, { quota: -3 });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ field: 'quota' });
      expect((await api('POST', `/v1/orgs/${randomUUID()}/quota`, { quota: 3 })).status).toBe(404);
      expect((await api('POST', `/v1/orgs/${t.oid}/quota`, {})).status).toBe(400);
      // null means unlimited, in JSON (never coerced to 0) and when creating an organization.
      expect(await setQuota(7)).toMatchObject({ new_quota: 7 });
      expect(await setQuota(null)).toMatchObject({ old_quota: 7, new_quota: null });
      expect((await api<{ quota: number | null }>('POST', '/v1/orgs', { name: 'nulled', quota: null })).body.quota).toBeNull();
      const created = await api<{ api_key: string; oid: string }>('POST', '/v1/orgs', { name: 'tenant' });
      const tenant = apiClient(t.url, created.body.api_key);
      const denied = await tenant<{ error: string }>('POST', `/v1/orgs/${created.body.oid}/quota`, { quota: 1000 });
      expect(denied.status).toBe(403);
      expect(denied.body.error).toMatch(/root/);
      // The tenant reads its own usage, not another org's.
      expect((await tenant('GET', `/v1/quota_usage/${created.body.oid}`)).status).toBe(200);
      expect((await tenant('GET', `/v1/quota_usage/${t.oid}`)).status).toBe(403);
    });

    it('lets exactly 10 of 50 sensors connecting at the same moment in, never 11 at any point', async () => {
      await setQuota(10);
      // Watch the registry itself: the highest number of sessions the org ever held at once.
      const registry = t.server.registry;
      const add = registry.add.bind(registry);
      let highest = 0;
      registry.add = (session) => {
        const previous = add(session);
        highest = Math.max(highest, registry.onlineCount(t.oid));
        return previous;
      };

      // A barrier in the store: every admission waits at its quota lookup until all 50 are there, so they
      // really are in flight together (a check-then-register with an await in between would let them all in).
      const store = t.server.store;
      const getOrg = store.getOrg.bind(store);
      let waiting: Array<() => void> = [];
      store.getOrg = async (oid) => {
        const org = await getOrg(oid);
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === 50) {
            for (const release of waiting) release();
            waiting = [];
          }
        });
        return org;
      };

      // 50 new sensors enroll at once...
      const fresh = await Promise.all(Array.from({ length: 50 }, (_, i) => connect(undefined, { hostname: `race-${i}` })));
      const results = await Promise.all(fresh.map(outcome));
      expect(results.filter((r) => r.welcome)).toHaveLength(10);
      expect(results.filter((r) => r.code === CloseCode.overQuota)).toHaveLength(40);
      expect(highest).toBe(10);

      // ...then all 50, with their identities, reconnect at once after the 10 went away.
      const identities = results.map((r, i) => ({
        auth: r.welcome ? { sid: r.welcome.sid, secret: r.welcome.identity!.secret } : { sid: r.error!.identity!.sid, secret: r.error!.identity!.secret },
        hostname: `race-${i}`,
      }));
      for (const c of clients.splice(0)) c.ws.terminate();
      await waitFor(() => registry.onlineCount(t.oid) === 0, { message: 'everyone offline' });
      highest = 0;
      const again = await Promise.all(identities.map((id) => connect(id.auth, { hostname: id.hostname })));
      const second = await Promise.all(again.map(outcome));
      expect(second.filter((r) => r.welcome)).toHaveLength(10);
      expect(second.filter((r) => r.code === CloseCode.overQuota)).toHaveLength(40);
      expect(highest).toBe(10);
      expect(registry.onlineCount(t.oid)).toBe(10);
      store.getOrg = getOrg;

      // The store agrees: 20 CONNECTED in all (10 per round), 50 enrollments.
      await t.server.writer.drain();
      let connected = 0;
      for (const id of identities) connected += (await timeline(id.auth.sid, 'CONNECTED')).length;
      expect(connected).toBe(20);
      expect((await deploymentStream()).filter((e) => e.routing.event_type === 'enrollment')).toHaveLength(50);
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      expect(metrics).toMatch(/^picket_sensor_sessions_refused_total\{reason="over_quota"\} 80$/m);
    });
  });

  describe('deletion', () => {
    it('closes the live session, refuses reconnects with 720h0m0s, reports once per 24 h, and undelete lets it back with the same sid', async () => {
      const { client, sid, secret } = await enrolled('del-1');
      const del = await api<{ deleted: boolean; disconnected: boolean }>('DELETE', `/v1/${sid}`);
      expect(del.body).toMatchObject({ deleted: true, disconnected: true });
      expect((await client.closed).code).toBe(CloseCode.deleted);
      expect(client.messages.find((m): m is ErrorMessage => m.t === 'error')).toMatchObject({ code: CloseCode.deleted, denied_for: '720h0m0s' });

      for (let i = 0; i < 5; i++) {
        const refused = await outcome(await connect({ sid, secret }, { hostname: 'del-1', fingerprint: 'fp-del-1' }));
        expect(refused.code).toBe(CloseCode.deleted);
        expect(refused.error).toMatchObject({ denied_for: '720h0m0s' });
        expect(refused.error!.message).toMatch(/denied-for=720h0m0s/);
      }
      expect(await timeline(sid, 'deleted_sensor')).toHaveLength(1);
      const [first] = await timeline(sid, 'deleted_sensor');
      expect(first!.event).toEqual({ denied_for: '720h0m0s' });
      expect(first!.routing).toMatchObject({ sid, hostname: 'del-1', ext_ip: '127.0.0.1', int_ip: '10.0.0.5' });

      offset += 23 * HOUR;
      await outcome(await connect({ sid, secret }, { hostname: 'del-1' }));
      expect(await timeline(sid, 'deleted_sensor')).toHaveLength(1);
      offset += HOUR + 1000;
      await outcome(await connect({ sid, secret }, { hostname: 'del-1' }));
      expect(await timeline(sid, 'deleted_sensor')).toHaveLength(2);

      const info = await api<{ info: { state: string; state_reason: string } }>('GET', `/v1/${sid}`);
      expect(info.body.info.state).toBe('deleted');
      expect(info.body.info.state_reason).toMatch(/denied for 720h0m0s/);

      expect((await api<{ undeleted: boolean }>('POST', `/v1/${sid}/undelete`)).body).toEqual({ undeleted: true, sid });
      expect((await api<{ undeleted: boolean }>('POST', `/v1/${sid}/undelete`)).body).toEqual({ undeleted: false, sid });
      const back = await outcome(await connect({ sid, secret }, { hostname: 'del-1', fingerprint: 'fp-del-1' }));
      expect(back.welcome?.sid).toBe(sid);
      expect(back.welcome?.identity).toBeUndefined();
      expect((await api<{ info: { state: string } }>('GET', `/v1/${sid}`)).body.info.state).toBe('online');

      // Deleted again: the notice window starts over, so the next refusal is reported at once.
      await api('DELETE', `/v1/${sid}`);
      await outcome(await connect({ sid, secret }, { hostname: 'del-1' }));
      expect(await timeline(sid, 'deleted_sensor')).toHaveLength(3);
      await expectValidDeploymentEvents(['deleted_sensor']);
    });

    it('forgets a sensor 30 days after its deletion: it is told to enroll anew', async () => {
      const { client, sid, secret } = await enrolled('old-1');
      client.close();
      await api('DELETE', `/v1/${sid}`);
      offset += 29 * DAY;
      expect(await t.server.forgetDeletedSensors()).toEqual([]);
      offset += DAY + 1000;
      expect(await t.server.forgetDeletedSensors()).toEqual([sid]);
      expect((await api('GET', `/v1/${sid}`)).status).toBe(404);
      const told = await outcome(await connect({ sid, secret }, { hostname: 'old-1' }));
      expect(told.code).toBe(CloseCode.reenroll);
      expect(told.error!.message).toMatch(/enroll again/);
      // Its history stays readable in the deployment stream.
      expect((await deploymentStream()).some((e) => e.routing.sid === sid && e.routing.event_type === 'enrollment')).toBe(true);
    });
  });

  describe('clones', () => {
    it('a second host presenting a live sid is refused as a clone and reported; re-enroll gives it a new sid', async () => {
      const original = await enrolled('host-a', 'fp-a');
      const copy = await connect({ sid: original.sid, secret: original.secret }, { hostname: 'host-b', fingerprint: 'fp-b' });
      const refused = await outcome(copy);
      expect(refused.code).toBe(CloseCode.cloneConflict);
      expect(refused.error!.retry_after_s).toBe(0.2);
      expect(refused.error!.message).toMatch(/host "host-b".*"host-a" holds a live session/);
      // The original is untouched.
      expect(original.client.ws.readyState).toBe(original.client.ws.OPEN);

      // Retrying does not flood: one sensor_clone per 10 minutes.
      expect((await outcome(await connect({ sid: original.sid, secret: original.secret }, { hostname: 'host-b', fingerprint: 'fp-b' }))).error!.retry_after_s).toBe(0.4);
      const clones = await timeline(original.sid, 'sensor_clone');
      expect(clones).toHaveLength(1);
      expect(clones[0]!.event).toEqual({ previous_hostname: 'host-a', new_hostname: 'host-b' });
      expect(clones[0]!.routing).toMatchObject({ sid: original.sid, oid: t.oid, plat: 0x20000000, arch: 2 });
      const info = await api<{ info: { state: string; last_issue: { kind: string; reason: string } } }>('GET', `/v1/${original.sid}`);
      expect(info.body.info).toMatchObject({ state: 'online', last_issue: { kind: 'clone' } });

      // Same fingerprint, other hostname, while live: also a clone.
      expect((await outcome(await connect({ sid: original.sid, secret: original.secret }, { hostname: 'host-c', fingerprint: 'fp-a' }))).code).toBe(CloseCode.cloneConflict);

      // Re-enroll the copy by hostname: the order waits for its next connection.
      const order = await api<{ delivered: boolean; hostname: string }>('POST', `/v1/${original.sid}/reenroll`, { hostname: 'host-b' });
      expect(order.body).toEqual({ sid: original.sid, hostname: 'host-b', delivered: false });
      expect((await api<{ info: { reenroll_order: { hostname: string } } }>('GET', `/v1/${original.sid}`)).body.info.reenroll_order).toMatchObject({ hostname: 'host-b' });
      const told = await outcome(await connect({ sid: original.sid, secret: original.secret }, { hostname: 'host-b', fingerprint: 'fp-b' }));
      expect(told.code).toBe(CloseCode.reenroll);
      const fresh = await enrolled('host-b', 'fp-b');
      expect(fresh.sid).not.toBe(original.sid);
      expect(await timeline(fresh.sid, 'enrollment')).toHaveLength(1);
      // The order was used up; the original keeps its sid and session.
      expect((await api<{ info: { reenroll_order: unknown } }>('GET', `/v1/${original.sid}`)).body.info.reenroll_order).toBeNull();
      expect(t.server.registry.isOnline(original.sid)).toBe(true);
      await expectValidDeploymentEvents(['sensor_clone', 'enrollment']);
    });

    it('an offline clone (another fingerprint) is reported when it first connects, and a live copy is re-enrolled at once', async () => {
      const original = await enrolled('golden-1', 'fp-golden');
      original.client.close();
      await waitFor(() => !t.server.registry.isOnline(original.sid), { message: 'original offline' });
      const copy = await connect({ sid: original.sid, secret: original.secret }, { hostname: 'golden-2', fingerprint: 'fp-other' });
      expect((await outcome(copy)).welcome?.sid).toBe(original.sid);
      const clones = await timeline(original.sid, 'sensor_clone');
      expect(clones.map((e) => e.event)).toEqual([{ previous_hostname: 'golden-1', new_hostname: 'golden-2' }]);

      // The copy is live: the order reaches it now.
      const order = await api<{ delivered: boolean }>('POST', `/v1/${original.sid}/reenroll`, {});
      expect(order.body.delivered).toBe(true);
      expect((await copy.closed).code).toBe(CloseCode.reenroll);
      expect((await api<{ info: { reenroll_order: unknown } }>('GET', `/v1/${original.sid}`)).body.info.reenroll_order).toBeNull();
    });
  });

  describe('crashes', () => {
    it('a crash report in hello becomes exactly one sensor_crash with full routing, however often it is resent', async () => {
      const { client, sid, secret } = await enrolled('crashy');
      client.close();
      await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline' });
      const crash = { crash_id: randomUUID(), file_id: 2_166_136_261, line_number: 42, thread_id: 4242, crashed_at: Date.now() - 1000, message: 'boom' };
      for (let i = 0; i < 3; i++) {
        const c = new ProtocolClient(t.url);
        clients.push(c);
        await c.opened;
        c.send({ t: 'hello', versions: [1], auth: { sid, secret }, host: ProtocolClient.host({ hostname: 'crashy', fingerprint: 'fp-crashy', int_ip: '10.1.1.1' }), stream_id: randomUUID(), crash });
        expect((await outcome(c)).welcome).toBeDefined();
        c.close();
        await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline' });
      }
      const crashes = await timeline(sid, 'sensor_crash');
      expect(crashes).toHaveLength(1);
      expect(crashes[0]!.event).toEqual({ crash_context: { FILE_ID: 2_166_136_261, LINE_NUMBER: 42, THREAD_ID: 4242 } });
      expect(crashes[0]!.routing).toMatchObject({ oid: t.oid, sid, hostname: 'crashy', ext_ip: '127.0.0.1', int_ip: '10.1.1.1', plat: 0x20000000, arch: 2 });
      expect(typeof crashes[0]!.routing.iid).toBe('string');
      const info = await api<{ info: { last_issue: { kind: string; reason: string } } }>('GET', `/v1/${sid}`);
      expect(info.body.info.last_issue.kind).toBe('crash');
      expect(info.body.info.last_issue.reason).toMatch(/LINE_NUMBER 42.*boom/);
      await expectValidDeploymentEvents(['sensor_crash']);
    });

    it('refuses a malformed crash report with a clear protocol error', async () => {
      const c = new ProtocolClient(t.url);
      clients.push(c);
      await c.opened;
      c.send({ t: 'hello', versions: [1], auth: { installation_key: t.installationKey }, host: ProtocolClient.host(), stream_id: randomUUID(), crash: { crash_id: 'nope', file_id: -1 } });
      const result = await outcome(c);
      expect(result.code).toBe(CloseCode.badMessage);
      expect(result.error!.message).toMatch(/crash/);
    });
  });

  it('the deployment stream API pages, validates its parameters, and is scoped to the organization', async () => {
    await setQuota(5);
    await setQuota(6);
    await setQuota(7);
    const first = await api<{ events: Envelope[]; next_cursor: string }>('GET', `/v1/insight/${t.oid}/stream/deployment?start=0&end=${FAR_S}&limit=2`);
    expect(first.body.events).toHaveLength(2);
    const second = await api<{ events: Envelope[]; next_cursor: string | null }>('GET', `/v1/insight/${t.oid}/stream/deployment?start=0&end=${FAR_S}&limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`);
    expect(second.body.events.map((e) => e.event)).toEqual([{ old_quota: 6, new_quota: 7 }]);
    expect(second.body.next_cursor).toBeNull();
    expect((await api('GET', `/v1/insight/${t.oid}/stream/nonsense?start=0&end=1`)).status).toBe(400);
    expect((await api('GET', `/v1/insight/${t.oid}/stream/deployment?start=10&end=1`)).status).toBe(400);
    expect((await api('GET', `/v1/insight/${randomUUID()}/stream/deployment?start=0&end=1`)).status).toBe(403);
  });
});
