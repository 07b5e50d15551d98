// Schedule ticks on a real server with an injected clock: each frequency fires once per wall-clock
// period, only for eligible organizations and sensors, with the documented payloads; a restart neither
// skips nor repeats a tick, and a long downtime emits only the current period.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BusEvent } from '../src/bus/event-bus.js';
import { SCHEDULE_FREQUENCIES, validateEvent, type ScheduleFrequency } from '../src/catalogue/index.js';
import { NIL_UUID } from '../src/domain/ids.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { perCloudAdapterEvent } from '../src/sources/platform/schedule-ticks.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
// Monday 2026-01-05 00:10:00 UTC: inside a 30m, 1h, ... period, not at a boundary.
const T0 = Date.UTC(2026, 0, 5, 0, 10, 0);
const FREQS = Object.keys(SCHEDULE_FREQUENCIES) as ScheduleFrequency[];

interface Envelope {
  routing: Record<string, unknown> & { oid: string; sid: string; event_type: string; event_time: number; tags: string[] };
  event: { frequency: number; runtime_mtd?: { entity_name: string; entity_type: string; mtd: Record<string, number>; published_at: number } };
}

/** Boundaries of a frequency crossed in (from, to]. */
function boundaries(freq: ScheduleFrequency, from: number, to: number): number {
  const len = SCHEDULE_FREQUENCIES[freq] * 1000;
  return Math.floor(to / len) - Math.floor(from / len);
}

describe('schedule events (real server, injected clock)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  let clock = T0;
  const dataDir = (): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-schedule-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  async function start(dir: string): Promise<{ s: TestServer; ticks: BusEvent[] }> {
    const s = await startTestServer({ dataDir: dir }, { now: () => clock });
    cleanups.push(() => s.close({ keepData: true }));
    const ticks: BusEvent[] = [];
    s.server.bus.subscribe((events) => {
      for (const e of events) if (e.stream === 'schedule') ticks.push(e);
    });
    await s.server.schedule.tick();
    return { s, ticks };
  }

  async function advance(s: TestServer, to: number): Promise<void> {
    clock = to;
    await s.server.schedule.tick();
  }

  const parsed = (ticks: BusEvent[]): Envelope[] => ticks.map((t) => JSON.parse(t.json) as Envelope);
  const named = (ticks: BusEvent[], type: string): Envelope[] => parsed(ticks).filter((e) => e.routing.event_type === type);

  it('fires at each boundary for eligible organizations and sensors only, with the documented payloads', async () => {
    clock = T0;
    const { s, ticks } = await start(dataDir());
    const store = s.server.store;
    // org A (the bootstrap org): sensor "online" holds a session; "recent" was seen 20 days ago; "stale" 40
    // days ago; "deleted" was seen now but is deleted. org B: one sensor, seen 10 days ago. org C: no sensor.
    const client = new ProtocolClient(s.url, 'json');
    cleanups.push(() => client.close());
    await client.hello({ installation_key: s.installationKey }, { host: { hostname: 'online-host' } });
    const online = (await client.welcome()).identity!.sid;
    const batches = [telemetry(5, 'NEW_PROCESS', T0), telemetry(7, 'DNS_REQUEST', T0)];
    let bytes = 0;
    batches.forEach((events, i) => {
      const frame = encodeFrame({ t: 'events', seq: i + 1, events }, 'json');
      bytes += Buffer.byteLength(frame);
      client.sendRaw(frame);
    });
    await client.waitForAck(2);

    const sensorIn = async (oid: string, alive: number | null, deleted = false): Promise<string> => {
      const sid = randomUUID();
      await store.createSensor({
        sid, oid, iid: randomUUID(), secret_hash: 'x'.repeat(64), tags: ['fleet'], enroll: T0 - 60 * DAY, hostname: `host-${sid.slice(0, 4)}`,
        plat: 0x10000000, arch: 2, int_ip: '10.1.1.1', ext_ip: '198.51.100.7', mac: '02:00:00:00:00:09', fingerprint: 'fp', sensor_version: '1', kernel: false,
      });
      if (alive !== null) await store.touchAlive([{ sid, alive }]);
      if (deleted) await store.setSensorDeleted(sid, T0);
      return sid;
    };
    const recent = await sensorIn(s.oid, T0 - 20 * DAY);
    await sensorIn(s.oid, T0 - 40 * DAY);
    await sensorIn(s.oid, T0, true);
    const orgB = randomUUID();
    await store.createOrg({ oid: orgB, name: 'b', quota: null, created: T0 - 60 * DAY });
    const inB = await sensorIn(orgB, T0 - 10 * DAY);
    const orgC = randomUUID();
    await store.createOrg({ oid: orgC, name: 'c', quota: null, created: T0 - 60 * DAY });

    // First start: no tick before the first boundary.
    expect(ticks).toEqual([]);
    await advance(s, Date.UTC(2026, 0, 5, 0, 29, 59, 999));
    expect(ticks).toEqual([]);

    const at = Date.UTC(2026, 0, 5, 0, 30);
    await advance(s, at);
    for (const t of ticks) {
      expect(t.stream).toBe('schedule');
      const check = validateEvent(JSON.parse(t.json), { produced: true });
      expect(check.errors).toEqual([]);
    }
    expect(new Set(parsed(ticks).map((e) => e.routing.event_type))).toEqual(new Set(['30m_per_org', '30m_per_sensor']));
    // Organizations: A (a sensor online) only; B's sensor was last seen 10 days ago (> 7), C has none.
    const orgTicks = named(ticks, '30m_per_org');
    expect(orgTicks.map((e) => e.routing.oid)).toEqual([s.oid]);
    expect(orgTicks[0]!.routing).toMatchObject({ sid: NIL_UUID, tags: [], event_time: at });
    expect(orgTicks[0]!.event).toEqual({ frequency: 1800 });
    // Sensors: seen within 30 days and not deleted, in any organization.
    const sensorTicks = named(ticks, '30m_per_sensor');
    expect(sensorTicks.map((e) => e.routing.sid).sort()).toEqual([online, recent, inB].sort());
    const live = sensorTicks.find((e) => e.routing.sid === online)!;
    expect(live.routing).toMatchObject({ oid: s.oid, hostname: 'online-host', plat: 0x20000000, arch: 2, int_ip: '10.0.0.5', event_time: at });
    expect(live.event).toEqual({
      frequency: 1800,
      runtime_mtd: {
        entity_name: online, entity_type: 'sensor', published_at: at,
        // 12 events over the 20 minutes since the session started (the injected clock's connect time).
        mtd: { bytes_recv: bytes, conn_at: T0 / 1000, eps_in: Math.round((12 / 1200) * 1000) / 1000, eps_out: 0, q_size: 0 },
      },
    });
    const offline = sensorTicks.find((e) => e.routing.sid === inB)!;
    expect(offline.routing).toMatchObject({ oid: orgB, tags: ['fleet'], plat: 0x10000000 });
    expect(offline.event.runtime_mtd!.mtd).toEqual({ bytes_recv: 0, conn_at: 0, eps_in: 0, eps_out: 0, q_size: 0 });

    // Same period again: nothing.
    const count = ticks.length;
    await advance(s, at + 10 * MIN);
    expect(ticks.length).toBe(count);
  });

  it('each frequency fires exactly once per period over eight days, and a restart neither skips nor repeats', async () => {
    clock = T0;
    const dir = dataDir();
    let { s, ticks } = await start(dir);
    const client = new ProtocolClient(s.url, 'json');
    await client.hello({ installation_key: s.installationKey });
    await client.welcome();
    const all: BusEvent[] = [];
    const collect = (): void => {
      all.push(...ticks);
      ticks.length = 0;
    };

    const end = T0 + 8 * DAY;
    const restartAt = T0 + 3 * DAY + 17 * MIN; // inside a 30m period, mid-day
    let restarted = false;
    for (let t = T0 + 7 * MIN; t <= end; t += 7 * MIN) {
      if (!restarted && t >= restartAt) {
        restarted = true;
        await advance(s, restartAt);
        collect();
        client.close();
        await s.close({ keepData: true });
        cleanups.pop();
        ({ s, ticks } = await start(dir));
        expect(ticks, 'a restart inside the period repeats nothing').toEqual([]);
      }
      await advance(s, t);
      collect();
    }
    const last = T0 + Math.floor(8 * DAY / (7 * MIN)) * 7 * MIN;
    // Every tick of the eight days, before and after the restart, matches the catalogue.
    expect(all.length).toBeGreaterThan(0);
    for (const t of all) {
      expect(t.stream).toBe('schedule');
      expect(validateEvent(JSON.parse(t.json), { produced: true }).errors, t.json).toEqual([]);
    }
    for (const freq of FREQS) {
      const orgTicks = named(all, `${freq}_per_org`);
      // The session ended with the restart; the organization stays eligible (its sensor was seen within 7 days).
      expect(orgTicks.length, freq).toBe(boundaries(freq, T0, last));
      const periods = orgTicks.map((e) => Math.floor(e.routing.event_time / (SCHEDULE_FREQUENCIES[freq] * 1000)));
      expect(new Set(periods).size, `${freq}: one tick per period`).toBe(periods.length);
      expect(named(all, `${freq}_per_sensor`).length, freq).toBe(boundaries(freq, T0, last));
    }
  });

  it('a stop before a boundary and a start after it emit that boundary\'s tick once, late, and the next boundary as usual', async () => {
    clock = T0;
    const dir = dataDir();
    const first = await start(dir);
    const client = new ProtocolClient(first.s.url, 'json');
    await client.hello({ installation_key: first.s.installationKey });
    await client.welcome();
    await advance(first.s, Date.UTC(2026, 0, 5, 0, 25));
    expect(first.ticks, 'nothing before the 00:30 boundary').toEqual([]);
    client.close();
    await first.s.close({ keepData: true });
    cleanups.pop();

    // Down across 00:30; back at 00:40, inside the period that began at 00:30.
    clock = Date.UTC(2026, 0, 5, 0, 40);
    const { s, ticks } = await start(dir);
    const late = parsed(ticks);
    for (const e of late) expect(validateEvent(e, { produced: true }).errors).toEqual([]);
    expect(late.map((e) => e.routing.event_type).sort(), 'the missed 00:30 boundary, once').toEqual(['30m_per_org', '30m_per_sensor']);
    expect(late.every((e) => e.routing.event_time === clock && e.event.frequency === 1800)).toBe(true);

    // Later in the same period: nothing more; the next boundary (01:00) ticks 30m and 1h once each.
    await advance(s, Date.UTC(2026, 0, 5, 0, 55));
    await advance(s, Date.UTC(2026, 0, 5, 0, 59, 59, 999));
    expect(ticks).toHaveLength(2);
    await advance(s, Date.UTC(2026, 0, 5, 1, 0));
    await advance(s, Date.UTC(2026, 0, 5, 1, 5));
    expect(parsed(ticks).slice(2).map((e) => e.routing.event_type).sort()).toEqual(['1h_per_org', '1h_per_sensor', '30m_per_org', '30m_per_sensor']);
    expect(named(ticks, '30m_per_org').map((e) => e.routing.event_time)).toEqual([Date.UTC(2026, 0, 5, 0, 40), Date.UTC(2026, 0, 5, 1, 0)]);
  });

  it('after a long downtime emits only the current period, once', async () => {
    clock = T0;
    const dir = dataDir();
    const first = await start(dir);
    const client = new ProtocolClient(first.s.url, 'json');
    await client.hello({ installation_key: first.s.installationKey });
    await client.welcome();
    client.close();
    await first.s.close({ keepData: true });
    cleanups.pop();
    clock = T0 + 21 * DAY + 5 * HOUR;
    const { s, ticks } = await start(dir);
    // Every frequency crossed boundaries during the three weeks: each fires once, now. The sensor was seen
    // 21 days ago: it gets per_sensor ticks (30 days), its organization no per_org tick (7 days).
    const types = parsed(ticks).map((e) => e.routing.event_type);
    expect(types.sort()).toEqual(FREQS.map((f) => `${f}_per_sensor`).sort());
    await advance(s, clock + 1000);
    expect(ticks).toHaveLength(FREQS.length);
  });

  it('ticks per cloud adapter for the organization\'s enabled adapters', async () => {
    clock = T0;
    const { s, ticks } = await start(dataDir());
    const api = apiClient(s.url, s.apiKey);
    const created = await api<{ sid: string }>('POST', `/v1/cloud_adapters/${s.oid}`, { name: 'hooks', type: 'webhook', secret: 'webhook-secret-0123456789', hostname: 'saas-hooks' });
    expect(created.status).toBe(200);
    await advance(s, Date.UTC(2026, 0, 5, 1, 0));
    const adapterTicks = parsed(ticks).filter((e) => e.routing.event_type.endsWith('_per_cloud_adapter'));
    expect(adapterTicks.map((e) => e.routing.event_type).sort()).toEqual(['1h_per_cloud_adapter', '30m_per_cloud_adapter']);
    for (const e of adapterTicks) {
      expect(validateEvent(e, { produced: true }).errors).toEqual([]);
      expect(e.routing).toMatchObject({ oid: s.oid, sid: created.body.sid });
      expect(e.event).toEqual({
        frequency: e.routing.event_type === '1h_per_cloud_adapter' ? 3600 : 1800,
        adapter_name: 'hooks',
        runtime_mtd: { entity_name: created.body.sid, entity_type: 'adapter', mtd: { platform: 'json', hostname: 'saas-hooks', adapter_type: 'webhook' }, published_at: Date.UTC(2026, 0, 5, 1, 0) },
      });
    }
  });

  it('builds per_cloud_adapter ticks that match the catalogue', () => {
    for (const freq of FREQS) {
      const e = perCloudAdapterEvent(freq, randomUUID(), { adapter_name: 'office-audit', sid: randomUUID(), platform: 'json', hostname: 'office-audit', adapter_type: 'webhook' }, T0);
      expect(e.stream).toBe('schedule');
      expect(validateEvent(JSON.parse(e.json), { produced: true }).errors).toEqual([]);
      expect((JSON.parse(e.json) as Envelope).event).toMatchObject({ frequency: SCHEDULE_FREQUENCIES[freq], adapter_name: 'office-audit', runtime_mtd: { entity_type: 'adapter', published_at: T0 } });
    }
  });
});
