// The Store contract: every backend runs this suite unchanged (test/store-sqlite.test.ts for SQLite, a
// PostgreSQL test later). Each test gets a fresh, migrated store from `open`. What it pins down beyond
// the interface's comments:
// - list orders: orgs, API keys and installation keys by (created, id); sensors by sid; tags by name;
//   timeline ties in event_time in append order.
// - hostname prefixes match ASCII case-insensitively, with %, _ and \ literal.
// - a tag expiring exactly at `now` is expired.
// - touchAlive never moves alive backwards and skips unknown sensors.
// - writes naming a missing record: boolean methods return false, void methods reject with
//   StoreNotFoundError (as do inserts referencing a missing org or sensor); duplicates reject with
//   StoreConflictError; a foreign or mangled cursor rejects with InvalidCursorError.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OutputConfig } from '../../src/domain/outputs.js';
import type { CloudAdapterConfig } from '../../src/domain/cloud-adapters.js';
import type { ArtifactRecord } from '../../src/domain/artifacts.js';
import type { ApiKeyRecord, InstallationKeyRecord, Org, SensorHost, TaskRecord } from '../../src/domain/records.js';
import { InvalidCursorError, StoreConflictError, StoreNotFoundError } from '../../src/store/errors.js';
import type { NewSensor, Store, StoredEvent, TimelineQuery } from '../../src/store/store.js';

export interface OpenedStore {
  store: Store;
  cleanup(): Promise<void>;
}

const FAR = 9_999_999_999_999;

function org(overrides: Partial<Org> = {}): Org {
  return { oid: randomUUID(), name: 'acme', quota: null, created: 1_700_000_000_000, ...overrides };
}

function apiKey(oid: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return { key_id: randomUUID(), oid, name: 'ci', role: 'admin', secret_hash: 'h'.repeat(64), created: 1_700_000_000_000, ...overrides };
}

function installationKey(oid: string, overrides: Partial<InstallationKeyRecord> = {}): InstallationKeyRecord {
  return { iid: randomUUID(), oid, desc: 'servers', tags: [], secret_hash: 's'.repeat(64), created: 1_700_000_000_000, ...overrides };
}

function host(overrides: Partial<SensorHost> = {}): SensorHost {
  return {
    hostname: 'web-01', plat: 0x20000000, arch: 2, int_ip: '10.0.0.5', ext_ip: '203.0.113.9', mac: '02:00:00:00:00:01',
    fingerprint: 'fp-1', sensor_version: '1.2.3', kernel: false, ...overrides,
  };
}

function newSensor(oid: string, overrides: Partial<NewSensor> = {}): NewSensor {
  return { ...host(), sid: randomUUID(), oid, iid: randomUUID(), secret_hash: 'x'.repeat(64), tags: [], enroll: 1_700_000_000_000, ...overrides };
}

function event(oid: string, sid: string | null, event_time: number, overrides: Partial<StoredEvent> = {}): StoredEvent {
  const event_id = overrides.event_id ?? randomUUID();
  const event_type = overrides.event_type ?? 'NEW_PROCESS';
  return {
    oid, sid, event_type, event_time, event_id,
    json: JSON.stringify({ routing: { oid, sid, event_type, event_time, event_id }, event: { n: event_id } }),
    ...overrides,
  };
}

/** Every page of a timeline query, checking each page respects the limit. */
async function readAll(store: Store, query: TimelineQuery): Promise<{ events: string[]; pages: number }> {
  const events: string[] = [];
  let cursor = query.cursor;
  let pages = 0;
  for (;;) {
    const page = await store.queryTimeline({ ...query, cursor });
    pages++;
    expect(page.events.length).toBeLessThanOrEqual(query.limit);
    events.push(...page.events);
    if (page.nextCursor === null) break;
    expect(page.events.length).toBe(query.limit);
    cursor = page.nextCursor;
    if (pages > 10_000) throw new Error('timeline paging does not terminate');
  }
  return { events, pages };
}

function idOf(json: string): string {
  return (JSON.parse(json) as { routing: { event_id: string } }).routing.event_id;
}

export function runStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`Store contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: Store;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
      await store.migrate();
    });

    afterEach(async () => {
      await store.close();
      await opened.cleanup();
    });

    describe('lifecycle', () => {
      it('migrates idempotently, answers ping, and closes twice without error', async () => {
        await store.migrate();
        await store.ping();
        expect(typeof store.description).toBe('string');
        expect(store.description.length).toBeGreaterThan(0);
        await store.close();
        await store.close();
      });
    });

    describe('organizations', () => {
      it('creates and reads an org; a missing oid is null', async () => {
        const a = org({ quota: 25 });
        const b = org({ quota: null });
        await store.createOrg(a);
        await store.createOrg(b);
        expect(await store.getOrg(a.oid)).toEqual(a);
        expect(await store.getOrg(b.oid)).toEqual(b);
        expect(await store.getOrg(randomUUID())).toBeNull();
      });

      it('rejects a duplicate oid with StoreConflictError and keeps the original', async () => {
        const a = org();
        await store.createOrg(a);
        const dup = store.createOrg({ ...a, name: 'other' });
        await expect(dup).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.createOrg({ ...a, name: 'other' })).rejects.toMatchObject({ code: 'CONFLICT' });
        expect((await store.getOrg(a.oid))?.name).toBe('acme');
      });

      it('lists orgs by creation time, then oid', async () => {
        expect(await store.listOrgs()).toEqual([]);
        const late = org({ created: 3000 });
        const early = org({ created: 1000 });
        const tieA = org({ created: 2000, oid: `a-${randomUUID()}` });
        const tieB = org({ created: 2000, oid: `b-${randomUUID()}` });
        for (const o of [late, tieB, early, tieA]) await store.createOrg(o);
        expect(await store.listOrgs()).toEqual([early, tieA, tieB, late]);
      });

      it('sets and clears the quota; an unknown org is StoreNotFoundError', async () => {
        const a = org();
        await store.createOrg(a);
        expect(await store.setOrgQuota(a.oid, 10)).toBeNull();
        expect((await store.getOrg(a.oid))?.quota).toBe(10);
        expect(await store.setOrgQuota(a.oid, null)).toBe(10);
        expect((await store.getOrg(a.oid))?.quota).toBeNull();
        await expect(store.setOrgQuota(randomUUID(), 5)).rejects.toBeInstanceOf(StoreNotFoundError);
      });
    });

    describe('API keys', () => {
      it('creates, reads and lists keys per org in creation order', async () => {
        const a = org();
        const b = org();
        await store.createOrg(a);
        await store.createOrg(b);
        const k2 = apiKey(a.oid, { role: 'read', created: 2000 });
        const k1 = apiKey(a.oid, { role: 'root', created: 1000, name: 'bootstrap' });
        const kb = apiKey(b.oid);
        for (const k of [k2, k1, kb]) await store.createApiKey(k);
        expect(await store.getApiKey(k1.key_id)).toEqual(k1);
        expect(await store.getApiKey(randomUUID())).toBeNull();
        expect(await store.listApiKeys(a.oid)).toEqual([k1, k2]);
        expect(await store.listApiKeys(b.oid)).toEqual([kb]);
        expect(await store.listApiKeys(randomUUID())).toEqual([]);
      });

      it('rejects a duplicate key_id and a missing org', async () => {
        const a = org();
        await store.createOrg(a);
        const k = apiKey(a.oid);
        await store.createApiKey(k);
        await expect(store.createApiKey({ ...k, name: 'again' })).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.createApiKey(apiKey(randomUUID()))).rejects.toBeInstanceOf(StoreNotFoundError);
      });

      it('deletes only within the owning org', async () => {
        const a = org();
        const b = org();
        await store.createOrg(a);
        await store.createOrg(b);
        const k = apiKey(a.oid);
        await store.createApiKey(k);
        expect(await store.deleteApiKey(b.oid, k.key_id)).toBe(false);
        expect(await store.getApiKey(k.key_id)).toEqual(k);
        expect(await store.deleteApiKey(a.oid, k.key_id)).toBe(true);
        expect(await store.getApiKey(k.key_id)).toBeNull();
        expect(await store.deleteApiKey(a.oid, k.key_id)).toBe(false);
      });
    });

    describe('installation keys', () => {
      it('round-trips tags (empty, several, unicode) and lists per org', async () => {
        const a = org();
        const b = org();
        await store.createOrg(a);
        await store.createOrg(b);
        const none = installationKey(a.oid, { created: 1000 });
        const some = installationKey(a.oid, { created: 2000, tags: ['prod', 'web', 'émoji-🙂', 'with "quotes"'], desc: 'edge, "tricky"' });
        const other = installationKey(b.oid);
        for (const k of [some, none, other]) await store.createInstallationKey(k);
        expect(await store.getInstallationKey(none.iid)).toEqual(none);
        expect(await store.getInstallationKey(some.iid)).toEqual(some);
        expect(await store.getInstallationKey(randomUUID())).toBeNull();
        expect(await store.listInstallationKeys(a.oid)).toEqual([none, some]);
        expect(await store.listInstallationKeys(b.oid)).toEqual([other]);
      });

      it('rejects a duplicate iid and a missing org', async () => {
        const a = org();
        await store.createOrg(a);
        const k = installationKey(a.oid);
        await store.createInstallationKey(k);
        await expect(store.createInstallationKey(k)).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.createInstallationKey(installationKey(randomUUID()))).rejects.toBeInstanceOf(StoreNotFoundError);
      });

      it('deletes only within the owning org and leaves enrolled sensors alone', async () => {
        const a = org();
        const b = org();
        await store.createOrg(a);
        await store.createOrg(b);
        const k = installationKey(a.oid, { tags: ['t'] });
        await store.createInstallationKey(k);
        const s = newSensor(a.oid, { iid: k.iid, tags: k.tags });
        await store.createSensor(s);
        expect(await store.deleteInstallationKey(b.oid, k.iid)).toBe(false);
        expect(await store.getInstallationKey(k.iid)).toEqual(k);
        expect(await store.deleteInstallationKey(a.oid, k.iid)).toBe(true);
        expect(await store.getInstallationKey(k.iid)).toBeNull();
        expect(await store.deleteInstallationKey(a.oid, k.iid)).toBe(false);
        const sensor = await store.getSensor(s.sid);
        expect(sensor?.iid).toBe(k.iid);
        expect(sensor?.tags).toEqual(['t']);
      });
    });

    describe('sensors', () => {
      let a: Org;
      let b: Org;
      beforeEach(async () => {
        a = org();
        b = org();
        await store.createOrg(a);
        await store.createOrg(b);
      });

      it('creates a sensor and reads the full record with its enrollment tags', async () => {
        const s = newSensor(a.oid, { tags: ['web', 'prod'], kernel: true, enroll: 1234 });
        await store.createSensor(s);
        expect(await store.getSensor(s.sid)).toEqual({
          sid: s.sid, oid: a.oid, iid: s.iid, did: null, secret_hash: s.secret_hash, tags: ['prod', 'web'], enroll: 1234,
          alive: null, isolated: false, should_isolate: false, deleted: null, issue: null, reenroll: null,
          hostname: s.hostname, plat: s.plat, arch: s.arch, int_ip: s.int_ip, ext_ip: s.ext_ip, mac: s.mac,
          fingerprint: s.fingerprint, sensor_version: s.sensor_version, kernel: true,
        });
        expect(await store.getSensorTags(s.sid, 2000)).toEqual([
          { tag: 'prod', by: 'installation-key', added: 1234, expires: null },
          { tag: 'web', by: 'installation-key', added: 1234, expires: null },
        ]);
        expect(await store.getSensor(randomUUID())).toBeNull();
      });

      it('rejects a duplicate sid (keeping the first) and a missing org', async () => {
        const s = newSensor(a.oid, { tags: ['one'] });
        await store.createSensor(s);
        await expect(store.createSensor({ ...s, hostname: 'other', tags: ['two'] })).rejects.toBeInstanceOf(StoreConflictError);
        const kept = await store.getSensor(s.sid);
        expect(kept?.hostname).toBe('web-01');
        expect(kept?.tags).toEqual(['one']);
        await expect(store.createSensor(newSensor(randomUUID()))).rejects.toBeInstanceOf(StoreNotFoundError);
      });

      it('pages through an org\'s sensors by sid with no duplicates or misses', async () => {
        const mine: string[] = [];
        for (let i = 0; i < 23; i++) {
          const s = newSensor(a.oid, { hostname: `h-${i}`, tags: i % 2 ? ['odd', 'all'] : ['all'] });
          mine.push(s.sid);
          await store.createSensor(s);
        }
        for (let i = 0; i < 4; i++) await store.createSensor(newSensor(b.oid));
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.listSensors(a.oid, { limit: 5, cursor });
          expect(page.sensors.length).toBeLessThanOrEqual(5);
          for (const s of page.sensors) {
            expect(s.oid).toBe(a.oid);
            expect(s.tags).toEqual(mine.indexOf(s.sid) % 2 ? ['all', 'odd'] : ['all']);
          }
          seen.push(...page.sensors.map((s) => s.sid));
          cursor = page.nextCursor ?? undefined;
          pages++;
        } while (cursor);
        expect(pages).toBe(5);
        expect(seen).toEqual([...mine].sort());
        expect(new Set(seen).size).toBe(23);
      });

      it('returns no next cursor when the page ends exactly at the last sensor', async () => {
        for (let i = 0; i < 4; i++) await store.createSensor(newSensor(a.oid));
        const page = await store.listSensors(a.oid, { limit: 4 });
        expect(page.sensors).toHaveLength(4);
        expect(page.nextCursor).toBeNull();
        expect(await store.listSensors(randomUUID(), { limit: 10 })).toEqual({ sensors: [], nextCursor: null });
      });

      it('rejects a mangled sensor cursor', async () => {
        await expect(store.listSensors(a.oid, { limit: 5, cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(InvalidCursorError);
      });

      it('filters by hostname prefix with %, _ and \\ taken literally, ASCII case-insensitively', async () => {
        const names = ['web-01', 'web-02', 'WEB-03', 'db-01', '100%_host', '100%xhost', '100x_host', '1000host', 'a_b', 'axb', 'back\\slash', 'backxslash'];
        const bySid = new Map<string, string>();
        for (const hostname of names) {
          const s = newSensor(a.oid, { hostname });
          bySid.set(s.sid, hostname);
          await store.createSensor(s);
        }
        await store.createSensor(newSensor(b.oid, { hostname: 'web-99' }));
        const match = async (prefix: string, limit = 100): Promise<string[]> => {
          const out: string[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.listSensors(a.oid, { limit, cursor, hostnamePrefix: prefix });
            out.push(...page.sensors.map((s) => s.hostname));
            cursor = page.nextCursor ?? undefined;
          } while (cursor);
          return out.sort();
        };
        expect(await match('web-')).toEqual(['WEB-03', 'web-01', 'web-02']);
        expect(await match('web-', 1)).toEqual(['WEB-03', 'web-01', 'web-02']);
        expect(await match('100%_')).toEqual(['100%_host']);
        expect(await match('100%')).toEqual(['100%_host', '100%xhost']);
        expect(await match('100')).toEqual(['1000host', '100%_host', '100%xhost', '100x_host'].sort());
        expect(await match('a_')).toEqual(['a_b']);
        expect(await match('back\\')).toEqual(['back\\slash']);
        expect(await match('db-01')).toEqual(['db-01']);
        expect(await match('nothing')).toEqual([]);
        expect(await match('')).toHaveLength(names.length);
      });

      it('hides deleted sensors unless includeDeleted; undeleting brings them back', async () => {
        const kept = newSensor(a.oid);
        const gone = newSensor(a.oid);
        await store.createSensor(kept);
        await store.createSensor(gone);
        expect(await store.setSensorDeleted(gone.sid, 5000)).toBe(true);
        expect((await store.getSensor(gone.sid))?.deleted).toBe(5000);
        const visible = await store.listSensors(a.oid, { limit: 10 });
        expect(visible.sensors.map((s) => s.sid)).toEqual([kept.sid]);
        const all = await store.listSensors(a.oid, { limit: 10, includeDeleted: true });
        expect(all.sensors.map((s) => s.sid).sort()).toEqual([kept.sid, gone.sid].sort());
        expect(await store.setSensorDeleted(gone.sid, null)).toBe(true);
        expect((await store.getSensor(gone.sid))?.deleted).toBeNull();
        expect((await store.listSensors(a.oid, { limit: 10 })).sensors).toHaveLength(2);
        expect(await store.setSensorDeleted(randomUUID(), 1)).toBe(false);
      });

      it('updates the host fields, isolation state and alive on connect', async () => {
        const s = newSensor(a.oid);
        await store.createSensor(s);
        const next = host({ hostname: 'web-01.renamed', plat: 0x10000000, arch: 1, int_ip: '10.1.1.1', ext_ip: '198.51.100.2', mac: '02:00:00:00:00:09', fingerprint: 'fp-2', sensor_version: '2.0.0', kernel: true });
        await store.updateSensorHost(s.sid, { ...next, isolated: true }, 9000);
        const got = await store.getSensor(s.sid);
        expect(got).toMatchObject({ ...next, isolated: true, alive: 9000, enroll: s.enroll, secret_hash: s.secret_hash, should_isolate: false });
        await store.updateSensorHost(s.sid, { ...next, isolated: false }, 9500);
        expect(await store.getSensor(s.sid)).toMatchObject({ isolated: false, alive: 9500 });
        await expect(store.updateSensorHost(randomUUID(), { ...next, isolated: false }, 1)).rejects.toBeInstanceOf(StoreNotFoundError);
      });

      it('touches alive for many sensors in one call, forward only, skipping unknown sensors', async () => {
        const s1 = newSensor(a.oid);
        const s2 = newSensor(b.oid);
        const s3 = newSensor(a.oid);
        for (const s of [s1, s2, s3]) await store.createSensor(s);
        await store.touchAlive([]);
        await store.touchAlive([{ sid: s1.sid, alive: 100 }, { sid: s2.sid, alive: 200 }, { sid: randomUUID(), alive: 300 }]);
        expect((await store.getSensor(s1.sid))?.alive).toBe(100);
        expect((await store.getSensor(s2.sid))?.alive).toBe(200);
        expect((await store.getSensor(s3.sid))?.alive).toBeNull();
        await store.touchAlive([{ sid: s1.sid, alive: 50 }, { sid: s2.sid, alive: 250 }]);
        expect((await store.getSensor(s1.sid))?.alive).toBe(100);
        expect((await store.getSensor(s2.sid))?.alive).toBe(250);
      });

      it('sets and clears should_isolate; an unknown sensor is StoreNotFoundError', async () => {
        const s = newSensor(a.oid);
        await store.createSensor(s);
        await store.setShouldIsolate(s.sid, true);
        expect((await store.getSensor(s.sid))?.should_isolate).toBe(true);
        await store.setShouldIsolate(s.sid, false);
        expect((await store.getSensor(s.sid))?.should_isolate).toBe(false);
        await expect(store.setShouldIsolate(randomUUID(), true)).rejects.toBeInstanceOf(StoreNotFoundError);
      });
    });

    describe('deployment guards', () => {
      let a: Org;
      beforeEach(async () => {
        a = org();
        await store.createOrg(a);
      });

      it('records and clears the latest issue of a sensor', async () => {
        const s = newSensor(a.oid);
        await store.createSensor(s);
        await store.recordSensorIssue(s.sid, { kind: 'over_quota', reason: 'quota 2 reached', at: 5000 });
        await store.recordSensorIssue(s.sid, { kind: 'clone', reason: 'host b uses this sid', at: 6000 });
        expect((await store.getSensor(s.sid))?.issue).toEqual({ kind: 'clone', reason: 'host b uses this sid', at: 6000 });
        await store.recordSensorIssue(s.sid, null);
        expect((await store.getSensor(s.sid))?.issue).toBeNull();
      });

      it('places and withdraws re-enroll orders, for one hostname or any copy', async () => {
        const s = newSensor(a.oid);
        await store.createSensor(s);
        expect(await store.setReenrollOrder(s.sid, { hostname: 'copy-1', at: 10 })).toBe(true);
        expect((await store.getSensor(s.sid))?.reenroll).toEqual({ hostname: 'copy-1', at: 10 });
        await store.setReenrollOrder(s.sid, { hostname: null, at: 11 });
        expect((await store.getSensor(s.sid))?.reenroll).toEqual({ hostname: null, at: 11 });
        await store.setReenrollOrder(s.sid, null);
        expect((await store.getSensor(s.sid))?.reenroll).toBeNull();
        expect(await store.setReenrollOrder(randomUUID(), { hostname: null, at: 1 })).toBe(false);
      });

      it('claims a notice once per window, per sensor and kind, and again once cleared', async () => {
        const sid = randomUUID();
        const other = randomUUID();
        expect(await store.claimSensorNotice(sid, 'deleted_sensor', 1000, 100)).toBe(true);
        expect(await store.claimSensorNotice(sid, 'deleted_sensor', 1099, 100)).toBe(false);
        expect(await store.claimSensorNotice(sid, 'sensor_over_quota', 1050, 100)).toBe(true);
        expect(await store.claimSensorNotice(other, 'deleted_sensor', 1050, 100)).toBe(true);
        expect(await store.claimSensorNotice(sid, 'deleted_sensor', 1100, 100)).toBe(true);
        expect(await store.claimSensorNotice(sid, 'deleted_sensor', 1150, 100)).toBe(false);
        await store.clearSensorNotice(sid, 'deleted_sensor');
        expect(await store.claimSensorNotice(sid, 'deleted_sensor', 1151, 100)).toBe(true);
        // An endless window: claimed once, ever.
        expect(await store.claimSensorNotice(sid, 'crash:x', 1, Number.POSITIVE_INFINITY)).toBe(true);
        expect(await store.claimSensorNotice(sid, 'crash:x', 9e15, Number.POSITIVE_INFINITY)).toBe(false);
      });

      it('lets exactly one of many concurrent claims win', async () => {
        const sid = randomUUID();
        const results = await Promise.all(Array.from({ length: 20 }, () => store.claimSensorNotice(sid, 'sensor_clone', 500, 1000)));
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('forgets sensors deleted long enough ago, with their tags, mark and notices, keeping their events', async () => {
        const old = newSensor(a.oid, { tags: ['t'] });
        const recent = newSensor(a.oid);
        const live = newSensor(a.oid);
        for (const s of [old, recent, live]) await store.createSensor(s);
        await store.setSensorDeleted(old.sid, 1000);
        await store.setSensorDeleted(recent.sid, 5000);
        await store.claimSensorNotice(old.sid, 'deleted_sensor', 1500, 10);
        const e = event(a.oid, old.sid, 1200);
        await store.appendEvents([e], [{ sid: old.sid, stream_id: 'S', seq: 3 }]);
        expect(await store.forgetDeletedSensors(2000, 100)).toEqual([old.sid]);
        expect(await store.getSensor(old.sid)).toBeNull();
        expect(await store.getSensorTags(old.sid, 0)).toEqual([]);
        expect(await store.getSequenceMark(old.sid)).toBeNull();
        // The notice went with it: a new claim wins at once.
        expect(await store.claimSensorNotice(old.sid, 'deleted_sensor', 1501, 1e9)).toBe(true);
        expect((await store.queryTimeline({ oid: a.oid, sid: old.sid, start: 0, end: FAR, limit: 10 })).events).toEqual([e.json]);
        expect(await store.getSensor(recent.sid)).not.toBeNull();
        expect(await store.getSensor(live.sid)).not.toBeNull();
        expect(await store.forgetDeletedSensors(2000, 100)).toEqual([]);
        expect(await store.forgetDeletedSensors(6000, 100)).toEqual([recent.sid]);
      });
    });

    describe('tasks', () => {
      const sid = randomUUID();
      function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
        return {
          task_id: randomUUID(), oid: randomUUID(), sid, command: 'selftest', investigation_id: null, created: 1000, expires: null,
          state: 'sent', sent_at: 1000, received_at: null, answered_at: null, error: null, answer: null, ...overrides,
        };
      }

      it('creates and reads a task; lists a sensor\'s tasks newest first', async () => {
        const a = task({ created: 1, command: 'run --shell-command "ls -l"', investigation_id: 'inv-1' });
        const b = task({ created: 2 });
        await store.createTask(a);
        await store.createTask(b);
        await store.createTask(task({ sid: randomUUID() }));
        expect(await store.getTask(a.task_id)).toEqual(a);
        expect(await store.getTask(randomUUID())).toBeNull();
        expect((await store.listTasks(sid, 10)).map((t) => t.task_id)).toEqual([b.task_id, a.task_id]);
        expect(await store.listTasks(sid, 1)).toHaveLength(1);
        await expect(store.createTask(a)).rejects.toBeInstanceOf(StoreConflictError);
      });

      it('moves a task forward only from the given states, with the state\'s time, error and answer', async () => {
        const t = task();
        await store.createTask(t);
        expect(await store.updateTask(t.task_id, ['sent'], { state: 'received', at: 1100 })).toBe(true);
        expect(await store.updateTask(t.task_id, ['sent', 'received'], { state: 'answered', at: 1200, error: 0, answer: '{"x":1}' })).toBe(true);
        // A late receipt does not undo the answer.
        expect(await store.updateTask(t.task_id, ['sent'], { state: 'received', at: 1300 })).toBe(false);
        expect(await store.getTask(t.task_id)).toMatchObject({ state: 'answered', received_at: 1100, answered_at: 1200, error: 0, answer: '{"x":1}' });
        expect(await store.updateTask(randomUUID(), ['sent'], { state: 'received', at: 1 })).toBe(false);
      });

      it('writes task rows in the same transaction as events: created, moved only for their own sensor and from the given states', async () => {
        const t = task({ state: 'sent' });
        const e = event(randomUUID(), sid, 5);
        await store.appendEvents([e], [], { create: [t] });
        expect(await store.getTask(t.task_id)).toEqual(t);
        await store.appendEvents([], [], {
          update: [
            { task_id: t.task_id, sid: randomUUID(), from: ['sent'], to: { state: 'answered', at: 10, error: 0, answer: 'spoofed' } },
            { task_id: t.task_id, sid, from: ['queued', 'sent'], to: { state: 'received', at: 20 } },
            { task_id: t.task_id, sid, from: ['queued', 'sent', 'received'], to: { state: 'answered', at: 30, error: 87, answer: '{"a":1}' } },
            { task_id: t.task_id, sid, from: ['queued', 'sent'], to: { state: 'received', at: 40 } },
          ],
        });
        expect(await store.getTask(t.task_id)).toEqual({ ...t, state: 'answered', received_at: 20, answered_at: 30, error: 87, answer: '{"a":1}' });
        // A failing batch takes its task rows with it.
        const lost = task();
        const bad = { ...event(randomUUID(), sid, 6), json: null as unknown as string };
        await expect(store.appendEvents([bad], [], { create: [lost] })).rejects.toThrow();
        expect(await store.getTask(lost.task_id)).toBeNull();
      });

      it('hands out queued tasks oldest first and expires those past their time', async () => {
        const old = task({ state: 'queued', sent_at: null, created: 1, expires: 500 });
        const live = task({ state: 'queued', sent_at: null, created: 2, expires: 5000 });
        const later = task({ state: 'queued', sent_at: null, created: 3, expires: 6000 });
        const sent = task({ created: 4 });
        for (const x of [later, sent, old, live]) await store.createTask(x);
        expect((await store.takeQueuedTasks(sid, 1000)).map((x) => x.task_id)).toEqual([live.task_id, later.task_id]);
        expect((await store.getTask(old.task_id))?.state).toBe('expired');
        expect(await store.updateTask(live.task_id, ['queued'], { state: 'sent', at: 1001 })).toBe(true);
        expect((await store.takeQueuedTasks(sid, 1002)).map((x) => x.task_id)).toEqual([later.task_id]);
        expect(await store.takeQueuedTasks(sid, 7000)).toEqual([]);
        expect((await store.getTask(later.task_id))?.state).toBe('expired');
      });
    });

    describe('tags', () => {
      let sid: string;
      beforeEach(async () => {
        const a = org();
        await store.createOrg(a);
        const s = newSensor(a.oid, { tags: ['base'], enroll: 1000 });
        sid = s.sid;
        await store.createSensor(s);
      });

      it('adds tags, sorted by name', async () => {
        await store.addSensorTags(sid, [
          { tag: 'zeta', by: 'api:key1', added: 2000, expires: null },
          { tag: 'alpha', by: 'api:key1', added: 2000, expires: 99_000 },
        ]);
        expect(await store.getSensorTags(sid, 3000)).toEqual([
          { tag: 'alpha', by: 'api:key1', added: 2000, expires: 99_000 },
          { tag: 'base', by: 'installation-key', added: 1000, expires: null },
          { tag: 'zeta', by: 'api:key1', added: 2000, expires: null },
        ]);
      });

      it('refreshes an existing tag (who, when, expiry)', async () => {
        await store.addSensorTags(sid, [{ tag: 'temp', by: 'rule:a', added: 2000, expires: 5000 }]);
        await store.addSensorTags(sid, [{ tag: 'temp', by: 'rule:b', added: 4000, expires: 8000 }]);
        await store.addSensorTags(sid, [{ tag: 'base', by: 'api:key2', added: 4500, expires: null }]);
        expect(await store.getSensorTags(sid, 6000)).toEqual([
          { tag: 'base', by: 'api:key2', added: 4500, expires: null },
          { tag: 'temp', by: 'rule:b', added: 4000, expires: 8000 },
        ]);
      });

      it('treats a tag expiring exactly at `now` as expired', async () => {
        await store.addSensorTags(sid, [
          { tag: 'gone', by: 'x', added: 1, expires: 5000 },
          { tag: 'stays', by: 'x', added: 1, expires: 5001 },
        ]);
        expect((await store.getSensorTags(sid, 4999)).map((t) => t.tag)).toEqual(['base', 'gone', 'stays']);
        expect((await store.getSensorTags(sid, 5000)).map((t) => t.tag)).toEqual(['base', 'stays']);
        expect((await store.getSensorTags(sid, 5001)).map((t) => t.tag)).toEqual(['base']);
      });

      it('leaves expired tags out of the sensor record and the sensor list', async () => {
        const now = Date.now();
        await store.addSensorTags(sid, [
          { tag: 'expired', by: 'x', added: 1, expires: now - 60_000 },
          { tag: 'future', by: 'x', added: 1, expires: now + 3_600_000 },
        ]);
        const s = await store.getSensor(sid);
        expect(s?.tags).toEqual(['base', 'future']);
        const page = await store.listSensors(s!.oid, { limit: 10 });
        expect(page.sensors[0]?.tags).toEqual(['base', 'future']);
      });

      it('removes tags; removing an absent tag is a no-op', async () => {
        await store.addSensorTags(sid, [{ tag: 'a', by: 'x', added: 1, expires: null }, { tag: 'b', by: 'x', added: 1, expires: null }]);
        await store.removeSensorTags(sid, ['a', 'not-there']);
        await store.removeSensorTags(sid, []);
        expect((await store.getSensorTags(sid, 2)).map((t) => t.tag)).toEqual(['b', 'base']);
        await store.removeSensorTags(randomUUID(), ['b']);
      });

      it('rejects tags for an unknown sensor with StoreNotFoundError', async () => {
        await expect(store.addSensorTags(randomUUID(), [{ tag: 'a', by: 'x', added: 1, expires: null }])).rejects.toBeInstanceOf(StoreNotFoundError);
        expect(await store.getSensorTags(randomUUID(), 0)).toEqual([]);
      });
    });

    describe('events and timeline', () => {
      const oid = randomUUID();
      const otherOid = randomUUID();
      const sid = randomUUID();
      const otherSid = randomUUID();

      it('returns a time range with inclusive bounds, oldest first, JSON verbatim', async () => {
        const evs = [100, 200, 300, 400, 500].map((t) => event(oid, sid, t));
        const odd = event(oid, sid, 350, { json: '{"routing":{"event_id":"verbatim"} , "event":{"s":"ünï\\u0000code 🙂"}}' });
        await store.appendEvents([...evs, odd], []);
        const page = await store.queryTimeline({ oid, sid, start: 200, end: 400, limit: 100 });
        expect(page.nextCursor).toBeNull();
        expect(page.events).toEqual([evs[1]!.json, evs[2]!.json, odd.json, evs[3]!.json]);
        expect((await store.queryTimeline({ oid, sid, start: 500, end: 500, limit: 10 })).events).toEqual([evs[4]!.json]);
        expect((await store.queryTimeline({ oid, sid, start: 501, end: FAR, limit: 10 })).events).toEqual([]);
        expect((await store.queryTimeline({ oid, sid, start: 0, end: 99, limit: 10 })).events).toEqual([]);
      });

      it('filters by event type', async () => {
        const evs = [
          event(oid, sid, 10, { event_type: 'NEW_PROCESS' }),
          event(oid, sid, 20, { event_type: 'DNS_REQUEST' }),
          event(oid, sid, 30, { event_type: 'NEW_PROCESS' }),
          event(oid, sid, 40, { event_type: 'NETWORK_CONNECTIONS' }),
        ];
        await store.appendEvents(evs, []);
        const q = { oid, sid, start: 0, end: FAR, limit: 100 };
        expect((await store.queryTimeline({ ...q, eventType: 'NEW_PROCESS' })).events).toEqual([evs[0]!.json, evs[2]!.json]);
        expect((await store.queryTimeline({ ...q, eventType: 'DNS_REQUEST', forward: false })).events).toEqual([evs[1]!.json]);
        expect((await store.queryTimeline({ ...q, eventType: 'NOPE' })).events).toEqual([]);
        expect((await store.queryTimeline({ ...q, eventType: 'NEW_PROCESS', start: 11, end: 30 })).events).toEqual([evs[2]!.json]);
      });

      it('pages stably through ties in event_time, forward and backward', async () => {
        // 7 events at 1000, 25 tied at 2000 (appended in two calls), 5 at 3000: pages split the ties.
        const before = Array.from({ length: 7 }, (_, i) => event(oid, sid, 1000 + (i % 2)));
        const ties1 = Array.from({ length: 13 }, () => event(oid, sid, 2000));
        const ties2 = Array.from({ length: 12 }, () => event(oid, sid, 2000));
        const after = Array.from({ length: 5 }, () => event(oid, sid, 3000));
        await store.appendEvents([...before, ...ties1], []);
        await store.appendEvents([...ties2, ...after], []);
        const expected = [
          ...before.filter((e) => e.event_time === 1000),
          ...before.filter((e) => e.event_time === 1001),
          ...ties1,
          ...ties2,
          ...after,
        ].map((e) => e.event_id);
        for (const limit of [1, 3, 4, 10, 36, 37, 100]) {
          const fwd = await readAll(store, { oid, sid, start: 0, end: FAR, limit });
          expect(fwd.events.map(idOf)).toEqual(expected);
          // A page ending exactly at the last event has no next cursor: no empty trailing page.
          expect(fwd.pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
          const back = await readAll(store, { oid, sid, start: 0, end: FAR, limit, forward: false });
          expect(back.events.map(idOf)).toEqual([...expected].reverse());
        }
        // Ranges that start or end inside the tie, paged.
        const tiesOnly = await readAll(store, { oid, sid, start: 2000, end: 2000, limit: 4 });
        expect(tiesOnly.events.map(idOf)).toEqual([...ties1, ...ties2].map((e) => e.event_id));
        const tiesBack = await readAll(store, { oid, sid, start: 1500, end: 2000, limit: 6, forward: false });
        expect(tiesBack.events.map(idOf)).toEqual([...ties1, ...ties2].map((e) => e.event_id).reverse());
      });

      it('continues from the cursor position when events arrive between pages', async () => {
        const first = Array.from({ length: 4 }, (_, i) => event(oid, sid, 100 + i));
        await store.appendEvents(first, []);
        const p1 = await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 2 }); // 100, 101
        const behind = event(oid, sid, 100); // before the cursor: never seen by this reader
        const tied = event(oid, sid, 101); // tied with the cursor's event_time, appended later: after it
        const newer = event(oid, sid, 200);
        await store.appendEvents([behind, tied, newer], []);
        const rest = await readAll(store, { oid, sid, start: 0, end: FAR, limit: 2, cursor: p1.nextCursor! });
        expect([...p1.events, ...rest.events].map(idOf)).toEqual([first[0]!, first[1]!, tied, first[2]!, first[3]!, newer].map((e) => e.event_id));
      });

      it('rejects a mangled cursor and one from the other direction', async () => {
        await store.appendEvents(Array.from({ length: 3 }, (_, i) => event(oid, sid, i)), []);
        const fwd = await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 1 });
        expect(fwd.nextCursor).not.toBeNull();
        await expect(store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 1, cursor: 'garbage!' })).rejects.toBeInstanceOf(InvalidCursorError);
        await expect(store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 1, cursor: fwd.nextCursor!, forward: false })).rejects.toBeInstanceOf(InvalidCursorError);
      });

      it('returns only the requested sensor of the requested org', async () => {
        const mine = event(oid, sid, 10);
        await store.appendEvents([mine, event(oid, otherSid, 10), event(otherOid, sid, 10), event(oid, null, 10)], []);
        expect((await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10 })).events).toEqual([mine.json]);
        expect((await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10, eventType: 'NEW_PROCESS' })).events).toEqual([mine.json]);
        expect((await store.queryTimeline({ oid: randomUUID(), sid, start: 0, end: FAR, limit: 10 })).events).toEqual([]);
        expect((await store.queryTimeline({ oid, sid: randomUUID(), start: 0, end: FAR, limit: 10 })).events).toEqual([]);
      });

      it('reads an org\'s platform stream by time, paged, leaving telemetry and other orgs out', async () => {
        const deployment = (t: number, o = oid) => event(o, sid, t, { event_type: 'enrollment', stream: 'deployment' });
        const orgLevel = { ...event(oid, null, 15, { event_type: 'quota_changed' }), stream: 'deployment' };
        const telemetry = event(oid, sid, 12);
        const audit = event(oid, null, 13, { event_type: 'api_call', stream: 'audit' });
        const tied = [deployment(20), deployment(20), deployment(20)];
        const first = deployment(10);
        await store.appendEvents([first, telemetry, audit, orgLevel, deployment(11, otherOid), ...tied, { ...event(oid, sid, 14), stream: 'event' }], []);
        const all: string[] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await store.queryStream({ oid, stream: 'deployment', start: 0, end: FAR, limit: 2, cursor });
          all.push(...page.events);
          if (!page.nextCursor) break;
          cursor = page.nextCursor;
        }
        expect(all).toEqual([first, orgLevel, ...tied].map((e) => e.json));
        const backward = await store.queryStream({ oid, stream: 'deployment', start: 15, end: 20, limit: 10, forward: false });
        expect(backward.events.map(idOf)).toEqual([...tied].reverse().map((e) => e.event_id).concat([orgLevel.event_id]));
        expect((await store.queryStream({ oid, stream: 'audit', start: 0, end: FAR, limit: 10 })).events).toEqual([audit.json]);
        expect((await store.queryStream({ oid, stream: 'event', start: 0, end: FAR, limit: 10 })).events).toEqual([]);
      });

      it('accepts empty appends', async () => {
        await store.appendEvents([], []);
        expect(await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10 })).toEqual({ events: [], nextCursor: null });
      });

      it('appends a large group commit in one call', async () => {
        const many = Array.from({ length: 20_000 }, (_, i) => event(oid, sid, 1_000_000 + Math.floor(i / 3)));
        await store.appendEvents(many, [{ sid, stream_id: 's', seq: 1 }]);
        const all = await readAll(store, { oid, sid, start: 0, end: FAR, limit: 5000 });
        expect(all.events.length).toBe(20_000);
        expect(all.events[0]).toBe(many[0]!.json);
        expect(all.events[19_999]).toBe(many[19_999]!.json);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 's', seq: 1 });
      });
    });

    describe('outputs, the event log and organization errors', () => {
      const oid = randomUUID();
      const sid = randomUUID();
      const output = (overrides: Partial<OutputConfig> = {}): OutputConfig => ({
        oid, name: 'siem', module: 'webhook', stream: 'event',
        filters: { event_white_list: ['NEW_PROCESS'], event_black_list: [], sid: null, tag: 'prod', inv_id: null, sample_rate: 1 },
        shape: { is_flat: false, is_no_routing: true, is_prefix_data: false },
        fields: { dest_host: 'https://example.test/hook', secret_key: 's3cret', timeout_s: 5, is_compression: true },
        created: 1_700_000_000_000, updated: 1_700_000_000_000, ...overrides,
      });

      it('stores an output; a new one starts at the end of the log, a replaced one keeps its cursor and creation time', async () => {
        await store.appendEvents([event(oid, sid, 1), event(oid, sid, 2)], []);
        const end = await store.lastLogSeq();
        expect(end).toBeGreaterThan(0);
        expect(await store.putOutput(output())).toEqual({ created: true });
        expect(await store.getOutput(oid, 'siem')).toEqual(output());
        expect(await store.getOutputCursor(oid, 'siem')).toBe(end);
        await store.setOutputCursor(oid, 'siem', end + 5);
        await store.setOutputCursor(oid, 'siem', end + 1); // never backwards
        expect(await store.getOutputCursor(oid, 'siem')).toBe(end + 5);
        expect(await store.putOutput(output({ module: 'file', created: 1_800_000_000_000, updated: 1_800_000_000_000 }))).toEqual({ created: false });
        expect(await store.getOutput(oid, 'siem')).toMatchObject({ module: 'file', created: 1_700_000_000_000, updated: 1_800_000_000_000 });
        expect(await store.getOutputCursor(oid, 'siem')).toBe(end + 5);
        await store.putOutput(output({ name: 'archive' }));
        await store.putOutput(output({ oid: randomUUID(), name: 'elsewhere' }));
        expect((await store.listOutputs(oid)).map((o) => o.name)).toEqual(['archive', 'siem']);
        expect((await store.listOutputs()).length).toBeGreaterThanOrEqual(3);
        expect(await store.deleteOutput(oid, 'siem')).toBe(true);
        expect(await store.deleteOutput(oid, 'siem')).toBe(false);
        expect(await store.getOutput(oid, 'siem')).toBeNull();
        expect(await store.getOutputCursor(oid, 'siem')).toBeNull();
      });

      it('reads one organization\'s stream in log order after a position, and counts a range', async () => {
        const other = randomUUID();
        const start = await store.lastLogSeq();
        const a = event(oid, sid, 10);
        const b = event(other, randomUUID(), 11);
        const c = event(oid, null, 12, { event_type: 'enrollment', stream: 'deployment' });
        const d = event(oid, sid, 9, { event_type: 'DNS_REQUEST' });
        await store.appendEvents([a, b, c], []);
        await store.appendEvents([d], []);
        const telemetry = await store.readLog({ oid, stream: 'event', afterSeq: start, limit: 10 });
        expect(telemetry.map((r) => r.json)).toEqual([a.json, d.json]);
        expect(telemetry[0]).toMatchObject({ oid, sid, event_type: 'NEW_PROCESS' });
        expect(telemetry[1]!.seq).toBeGreaterThan(telemetry[0]!.seq);
        expect((await store.readLog({ oid, stream: 'event', afterSeq: telemetry[0]!.seq, limit: 10 })).map((r) => r.json)).toEqual([d.json]);
        expect((await store.readLog({ oid, stream: 'event', afterSeq: start, limit: 1 })).map((r) => r.json)).toEqual([a.json]);
        expect((await store.readLog({ oid, stream: 'deployment', afterSeq: start, limit: 10 })).map((r) => r.json)).toEqual([c.json]);
        expect(await store.countLog({ oid, stream: 'event', afterSeq: start, upToSeq: await store.lastLogSeq() })).toBe(2);
        expect(await store.countLog({ oid, stream: 'event', afterSeq: start, upToSeq: telemetry[0]!.seq })).toBe(1);
      });

      it('keeps the latest error per component', async () => {
        await store.recordOrgError({ oid, component: 'outputs/siem', error: 'HTTP 500', at: 1 });
        await store.recordOrgError({ oid, component: 'outputs/siem', error: 'HTTP 503', at: 2 });
        await store.recordOrgError({ oid, component: 'outputs/archive', error: 'disk full', at: 3 });
        expect(await store.listOrgErrors(oid)).toEqual([
          { oid, component: 'outputs/archive', error: 'disk full', at: 3 },
          { oid, component: 'outputs/siem', error: 'HTTP 503', at: 2 },
        ]);
        await store.clearOrgError(oid, 'outputs/siem');
        expect((await store.listOrgErrors(oid)).map((e) => e.component)).toEqual(['outputs/archive']);
        expect(await store.listOrgErrors(randomUUID())).toEqual([]);
      });
    });

    describe('usage metering and schedule marks', () => {
      const H = 3_600_000;
      const P0 = 1_717_027_200_000; // 2024-05-30 00:00:00 UTC

      it('adds counters, replaces gauges, and lists an organization\'s periods in order', async () => {
        const oid = randomUUID();
        const other = randomUUID();
        await store.addUsage([
          { oid, period: P0, cat: 'sensor', k: 'events_recv', v: 10, mode: 'add' },
          { oid, period: P0 + H, cat: 'sensor', k: 'events_recv', v: 1, mode: 'add' },
          { oid, period: P0, cat: 'artifact', k: 'bytes_stored', v: 500, mode: 'set' },
          { oid: other, period: P0, cat: 'sensor', k: 'events_recv', v: 99, mode: 'add' },
        ]);
        await store.addUsage([
          { oid, period: P0, cat: 'sensor', k: 'events_recv', v: 5, mode: 'add' },
          { oid, period: P0, cat: 'artifact', k: 'bytes_stored', v: 300, mode: 'set' },
        ]);
        expect(await store.listUsage(oid, P0, P0 + H)).toEqual([
          { oid, period: P0, cat: 'artifact', k: 'bytes_stored', v: 300 },
          { oid, period: P0, cat: 'sensor', k: 'events_recv', v: 15 },
          { oid, period: P0 + H, cat: 'sensor', k: 'events_recv', v: 1 },
        ]);
        expect(await store.listUsage(oid, P0 + H, P0 + H)).toHaveLength(1);
        expect((await store.usageOfPeriod(P0)).map((a) => a.oid).sort()).toEqual([oid, oid, other].sort());
      });

      it('closes a period once: its events are stored by the first close only', async () => {
        const oid = randomUUID();
        await store.addUsage([{ oid, period: P0, cat: 'output', k: 'bytes_tx', v: 7, mode: 'add' }]);
        await store.addUsage([{ oid, period: P0 + H, cat: 'output', k: 'bytes_tx', v: 1, mode: 'add' }]);
        expect(await store.unclosedUsagePeriods(P0 + H)).toEqual([P0]);
        expect(await store.unclosedUsagePeriods(P0 + 2 * H)).toEqual([P0, P0 + H]);
        const record = event(oid, null, P0 + H, { event_type: 'billing_record', stream: 'billing' });
        expect(await store.closeUsagePeriod(P0, [record], P0 + H)).toBe(true);
        expect(await store.closeUsagePeriod(P0, [event(oid, null, P0 + H, { event_type: 'billing_record', stream: 'billing' })], P0 + H)).toBe(false);
        expect(await store.unclosedUsagePeriods(P0 + 2 * H)).toEqual([P0 + H]);
        const page = await store.queryStream({ oid, stream: 'billing', start: 0, end: FAR, limit: 10 });
        expect(page.events.map(idOf)).toEqual([record.event_id]);
      });

      it('moves a schedule mark only forward', async () => {
        expect(await store.getScheduleMarks()).toEqual({});
        expect(await store.claimSchedulePeriod('1h', P0)).toBe(true);
        expect(await store.claimSchedulePeriod('1h', P0)).toBe(false);
        expect(await store.claimSchedulePeriod('1h', P0 - H)).toBe(false);
        expect(await store.claimSchedulePeriod('30m', P0)).toBe(true);
        expect(await store.claimSchedulePeriod('1h', P0 + H)).toBe(true);
        expect(await store.getScheduleMarks()).toEqual({ '1h': P0 + H, '30m': P0 });
      });

      it('lists sensors seen since a time, without deleted ones, with their tags', async () => {
        const o = org();
        await store.createOrg(o);
        const recent = newSensor(o.oid, { tags: ['prod'] });
        const old = newSensor(o.oid);
        const gone = newSensor(o.oid);
        const never = newSensor(o.oid);
        for (const s of [recent, old, gone, never]) await store.createSensor(s);
        await store.touchAlive([{ sid: recent.sid, alive: P0 }, { sid: old.sid, alive: P0 - 31 * 24 * H }, { sid: gone.sid, alive: P0 }]);
        await store.setSensorDeleted(gone.sid, P0);
        const seen = await store.listSensorsSeenSince(P0 - 30 * 24 * H);
        expect(seen.map((s) => s.sid)).toEqual([recent.sid]);
        expect(seen[0]!.tags).toEqual(['prod']);
        expect(seen[0]!.alive).toBe(P0);
      });
    });

    describe('artifacts', () => {
      const T0 = 1_700_000_000_000;
      const artifact = (oid: string, overrides: Partial<ArtifactRecord> = {}): ArtifactRecord => ({
        log_id: randomUUID(), oid, payload_id: randomUUID(), log_type: 'pcap', source: 'sensor', original_path: '/a.pcap',
        size: 3, sha256: 'a'.repeat(64), md5: 'b'.repeat(32), created: T0, expires: T0 + 1000, ...overrides,
      });

      it('keeps ingestion keys per organization, unique by name, deleted by name', async () => {
        const o = org();
        await store.createOrg(o);
        const key = { key_id: randomUUID(), oid: o.oid, name: 'uploads', secret_hash: 'h'.repeat(64), created: T0 };
        await store.createIngestionKey(key);
        await expect(store.createIngestionKey({ ...key, key_id: randomUUID() })).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.createIngestionKey({ ...key, key_id: randomUUID(), oid: randomUUID() })).rejects.toBeInstanceOf(StoreNotFoundError);
        expect(await store.getIngestionKey(key.key_id)).toEqual(key);
        expect(await store.listIngestionKeys(o.oid)).toEqual([key]);
        expect(await store.deleteIngestionKey(o.oid, 'other')).toBe(false);
        expect(await store.deleteIngestionKey(o.oid, 'uploads')).toBe(true);
        expect(await store.getIngestionKey(key.key_id)).toBeNull();
      });

      it('an artifact and a ready export are unannounced until a commit with their event marks them', async () => {
        const o = org();
        await store.createOrg(o);
        const a = artifact(o.oid, { payload_id: 'announce-me' });
        await store.createArtifact(a);
        expect((await store.listUnannouncedArtifacts(10)).map((x) => x.log_id)).toContain(a.log_id);
        const exportId = randomUUID();
        await store.createArtifactExport({ export_id: exportId, oid: o.oid, log_ids: [a.log_id], state: 'pending', size: 0, error: null, created: T0, completed: null });
        expect((await store.listUnannouncedExports(10)).map((x) => x.export_id)).not.toContain(exportId); // pending: nothing to announce yet
        await store.finishArtifactExport(exportId, { state: 'ready', size: 42 }, T0 + 1);
        expect((await store.listUnannouncedExports(10)).map((x) => x.export_id)).toContain(exportId);
        const ingest = event(o.oid, null, T0, { event_type: 'ingest', stream: 'artifact' });
        await store.appendEvents([ingest], [], { announce: { artifacts: [a.log_id], exports: [exportId] } });
        expect((await store.listUnannouncedArtifacts(10)).map((x) => x.log_id)).not.toContain(a.log_id);
        expect((await store.listUnannouncedExports(10)).map((x) => x.export_id)).not.toContain(exportId);
        expect(await store.getArtifact(o.oid, a.log_id)).toEqual(a);
      });

      it('stores an artifact once per payload id, forgetting its parts; a repeated part changes nothing', async () => {
        const o = org();
        await store.createOrg(o);
        expect(await store.putArtifactPart({ oid: o.oid, payload_id: 'p', part: 1, size: 10, received: T0 })).toBe(true);
        expect(await store.putArtifactPart({ oid: o.oid, payload_id: 'p', part: 1, size: 99, received: T0 + 5 })).toBe(false);
        expect(await store.putArtifactPart({ oid: o.oid, payload_id: 'p', part: 0, size: 4, received: T0 })).toBe(true);
        expect((await store.listArtifactParts(o.oid, 'p')).map((p) => [p.part, p.size])).toEqual([[0, 4], [1, 10]]);
        const a = artifact(o.oid, { payload_id: 'p' });
        expect(await store.createArtifact(a)).toBe(true);
        expect(await store.listArtifactParts(o.oid, 'p')).toEqual([]);
        expect(await store.createArtifact(artifact(o.oid, { payload_id: 'p' }))).toBe(false);
        expect(await store.getArtifactByPayloadId(o.oid, 'p')).toEqual(a);
        expect(await store.getArtifact(o.oid, a.log_id)).toEqual(a);
        expect(await store.getArtifact(randomUUID(), a.log_id)).toBeNull();
        expect(await store.artifactBytesStored(o.oid)).toBe(3);
      });

      it('lists artifacts by time range a page at a time, and deletes expired ones keeping shared content referenced', async () => {
        const o = org();
        await store.createOrg(o);
        const all = [0, 1, 1, 2, 3].map((i) => artifact(o.oid, { created: T0 + i, expires: T0 + 100 + i, sha256: i === 3 ? 'c'.repeat(64) : 'a'.repeat(64) }));
        for (const a of all) await store.createArtifact(a);
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.listArtifacts({ oid: o.oid, start: T0 + 1, end: T0 + 3, limit: 2, ...(cursor ? { cursor } : {}) });
          expect(page.artifacts.length).toBeLessThanOrEqual(2);
          seen.push(...page.artifacts.map((a) => a.log_id));
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        const expected = all.slice(1).sort((x, y) => x.created - y.created || x.log_id.localeCompare(y.log_id)).map((a) => a.log_id);
        expect(seen).toEqual(expected);
        await expect(store.listArtifacts({ oid: o.oid, start: 0, end: FAR, limit: 2, cursor: 'nope' })).rejects.toBeInstanceOf(InvalidCursorError);

        const gone = await store.takeExpiredArtifacts(T0 + 101, 100);
        expect(gone.map((a) => a.log_id).sort()).toEqual(all.slice(0, 3).map((a) => a.log_id).sort());
        expect(await store.isArtifactContentReferenced('a'.repeat(64))).toBe(true);
        expect(await store.takeExpiredArtifacts(T0 + 102, 100)).toHaveLength(1);
        expect(await store.isArtifactContentReferenced('a'.repeat(64))).toBe(false);
        expect(await store.isArtifactContentReferenced('c'.repeat(64))).toBe(true);
      });

      it('moves an export from pending to ready or failed once, and forgets finished ones', async () => {
        const o = org();
        await store.createOrg(o);
        const e = { export_id: randomUUID(), oid: o.oid, log_ids: ['x'], state: 'pending' as const, size: 0, error: null, created: T0, completed: null };
        await store.createArtifactExport(e);
        expect((await store.listPendingArtifactExports()).map((x) => x.export_id)).toContain(e.export_id);
        expect(await store.finishArtifactExport(e.export_id, { state: 'ready', size: 42 }, T0 + 1)).toBe(true);
        expect(await store.finishArtifactExport(e.export_id, { state: 'failed', error: 'late' }, T0 + 2)).toBe(false);
        expect(await store.getArtifactExport(o.oid, e.export_id)).toEqual({ ...e, state: 'ready', size: 42, completed: T0 + 1 });
        expect(await store.getArtifactExport(randomUUID(), e.export_id)).toBeNull();
        expect(await store.takeFinishedArtifactExports(T0, 10)).toEqual([]);
        expect((await store.takeFinishedArtifactExports(T0 + 1, 10)).map((x) => x.export_id)).toEqual([e.export_id]);
        expect(await store.getArtifactExport(o.oid, e.export_id)).toBeNull();
      });

      it('forgets uploads abandoned before a time', async () => {
        const o = org();
        await store.createOrg(o);
        await store.putArtifactPart({ oid: o.oid, payload_id: 'old', part: 1, size: 1, received: T0 });
        await store.putArtifactPart({ oid: o.oid, payload_id: 'new', part: 1, size: 1, received: T0 + 10 });
        expect(await store.takeStaleArtifactUploads(T0 + 5, 10)).toEqual([{ oid: o.oid, payload_id: 'old' }]);
        expect(await store.listArtifactParts(o.oid, 'old')).toEqual([]);
        expect(await store.listArtifactParts(o.oid, 'new')).toHaveLength(1);
      });
    });

    describe('cloud adapters', () => {
      const oid = randomUUID();
      const adapter = (overrides: Partial<CloudAdapterConfig> = {}): CloudAdapterConfig => ({
        oid, name: 'okta', type: 'http_poller', platform: 'json', hostname: 'okta', mapping: { event_type_path: 'kind' },
        settings: { url: 'https://example.test/logs', auth_value: 's3cret', interval: 60 }, grace_period: 30,
        enabled: true, disabled_at: null, disabled_error: null, created: 1_700_000_000_000, updated: 1_700_000_000_000, ...overrides,
      });

      it('stores, lists and replaces adapters; a replaced one keeps its cursor and creation time unless its type changes', async () => {
        expect(await store.putCloudAdapter(adapter())).toEqual({ created: true });
        await store.putCloudAdapter(adapter({ oid: randomUUID(), name: 'other' }));
        expect(await store.getCloudAdapter(oid, 'okta')).toEqual(adapter());
        expect((await store.listCloudAdapters(oid)).map((a) => a.name)).toEqual(['okta']);
        expect((await store.listCloudAdapters()).length).toBeGreaterThanOrEqual(2);
        expect(await store.getCloudAdapterCursor(oid, 'okta')).toBeNull();
        await store.setCloudAdapterCursor(oid, 'okta', '2026-01-01T00:00:00Z');
        expect(await store.putCloudAdapter(adapter({ hostname: 'okta-2', created: 5, updated: 1_800_000_000_000 }))).toEqual({ created: false });
        expect(await store.getCloudAdapter(oid, 'okta')).toMatchObject({ hostname: 'okta-2', created: 1_700_000_000_000, updated: 1_800_000_000_000 });
        expect(await store.getCloudAdapterCursor(oid, 'okta')).toBe('2026-01-01T00:00:00Z');
        await store.putCloudAdapter(adapter({ type: 'webhook', settings: { secret: 'x'.repeat(16) } }));
        expect(await store.getCloudAdapterCursor(oid, 'okta')).toBeNull();
        expect(await store.getCloudAdapter(oid, 'missing')).toBeNull();
      });

      it('disables an enabled adapter exactly once, and enables it again', async () => {
        await store.putCloudAdapter(adapter());
        const tries = await Promise.all([1, 2, 3].map(() => store.disableCloudAdapter(oid, 'okta', 1_700_000_100_000, 'HTTP 401')));
        expect(tries.filter(Boolean)).toHaveLength(1);
        expect(await store.getCloudAdapter(oid, 'okta')).toMatchObject({ enabled: false, disabled_at: 1_700_000_100_000, disabled_error: 'HTTP 401' });
        expect(await store.disableCloudAdapter(oid, 'okta', 1_700_000_200_000, 'again')).toBe(false);
        expect(await store.enableCloudAdapter(oid, 'okta', 1_700_000_300_000)).toBe(true);
        expect(await store.getCloudAdapter(oid, 'okta')).toMatchObject({ enabled: true, disabled_at: null, disabled_error: null, updated: 1_700_000_300_000 });
        expect(await store.enableCloudAdapter(oid, 'missing', 1)).toBe(false);
        expect(await store.disableCloudAdapter(oid, 'missing', 1, 'x')).toBe(false);
      });

      it('deletes an adapter with its cursor and its component error', async () => {
        await store.putCloudAdapter(adapter());
        await store.setCloudAdapterCursor(oid, 'okta', '42');
        await store.recordOrgError({ oid, component: 'cloud_adapters/okta', error: 'HTTP 500', at: 1 });
        await store.recordOrgError({ oid, component: 'outputs/okta', error: 'kept', at: 1 });
        expect(await store.deleteCloudAdapter(oid, 'okta')).toBe(true);
        expect(await store.getCloudAdapter(oid, 'okta')).toBeNull();
        expect((await store.listOrgErrors(oid)).map((e) => e.component)).toEqual(['outputs/okta']);
        expect(await store.deleteCloudAdapter(oid, 'okta')).toBe(false);
        await store.putCloudAdapter(adapter());
        expect(await store.getCloudAdapterCursor(oid, 'okta')).toBeNull();
      });
    });

    describe('sequence marks', () => {
      const oid = randomUUID();
      const sid = randomUUID();

      it('is null before the first mark', async () => {
        expect(await store.getSequenceMark(sid)).toBeNull();
      });

      it('only moves forward for the same stream id', async () => {
        await store.appendEvents([], [{ sid, stream_id: 'A', seq: 5 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 5 });
        await store.appendEvents([], [{ sid, stream_id: 'A', seq: 3 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 5 });
        await store.appendEvents([], [{ sid, stream_id: 'A', seq: 5 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 5 });
        await store.appendEvents([event(oid, sid, 1)], [{ sid, stream_id: 'A', seq: 9 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 9 });
      });

      it('is replaced by a new stream id, even with a lower seq', async () => {
        await store.appendEvents([], [{ sid, stream_id: 'A', seq: 40 }]);
        await store.appendEvents([], [{ sid, stream_id: 'B', seq: 2 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'B', seq: 2 });
        await store.appendEvents([], [{ sid, stream_id: 'B', seq: 1 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'B', seq: 2 });
      });

      it('keeps marks of several sensors from one commit apart', async () => {
        const s2 = randomUUID();
        await store.appendEvents([event(oid, sid, 1), event(oid, s2, 1)], [{ sid, stream_id: 'A', seq: 1 }, { sid: s2, stream_id: 'Z', seq: 7 }]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 1 });
        expect(await store.getSequenceMark(s2)).toEqual({ sid: s2, stream_id: 'Z', seq: 7 });
      });

      it('is atomic with the events: a failing batch stores neither events nor mark', async () => {
        const ok = event(oid, sid, 1);
        await store.appendEvents([ok], [{ sid, stream_id: 'A', seq: 1 }]);
        const good = event(oid, sid, 2);
        const bad = { ...event(oid, sid, 3), json: null as unknown as string };
        await expect(store.appendEvents([good, bad], [{ sid, stream_id: 'A', seq: 2 }])).rejects.toThrow();
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 1 });
        expect((await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10 })).events).toEqual([ok.json]);
        // A failing mark also takes its events with it.
        const badMark = { sid, stream_id: null as unknown as string, seq: 3 };
        await expect(store.appendEvents([good], [badMark])).rejects.toThrow();
        expect((await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10 })).events).toEqual([ok.json]);
        // And the store still works afterwards.
        await store.appendEvents([good], [{ sid, stream_id: 'A', seq: 2 }]);
        expect((await store.queryTimeline({ oid, sid, start: 0, end: FAR, limit: 10 })).events).toEqual([ok.json, good.json]);
        expect(await store.getSequenceMark(sid)).toEqual({ sid, stream_id: 'A', seq: 2 });
      });
    });
  });
}
