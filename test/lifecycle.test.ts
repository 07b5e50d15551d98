// A reference sensor process against a server process: enrollment, online state and lifecycle events,
// exactly as a user runs them from the README — on the embedded store and on PostgreSQL (--store).
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { isUuid } from '../src/domain/ids.js';
import { apiClient } from './harness/server.js';
import { startSensorProcess, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';
import { dropSchema, freshSchemaName, postgresAvailable, storeUrl } from './harness/postgres.js';

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; event_time: number; sid: string };
  event: Record<string, unknown>;
}

const backends = [
  { name: 'embedded SQLite', postgres: false, run: true },
  { name: 'PostgreSQL', postgres: true, run: postgresAvailable },
];

for (const backend of backends) describe.runIf(backend.run)(`reference sensor lifecycle (real processes, ${backend.name})`, () => {
  let server: ServerProcess;
  const schema = freshSchemaName('lifecycle');
  let stateDir: string;
  let api: ReturnType<typeof apiClient>;
  const sensors: ManagedProcess[] = [];

  beforeAll(async () => {
    server = await startServerProcess(backend.postgres ? { args: ['--store', storeUrl(schema)] } : {});
    if (backend.postgres) expect(server.logs().find((l) => l.msg === 'picket ready')?.store).toContain(`schema ${schema}`);
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-sensor-'));
    api = apiClient(server.url, server.credentials.api_key);
  });

  afterAll(async () => {
    for (const s of sensors) s.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(server.dataDir, { recursive: true, force: true });
    if (backend.postgres) await dropSchema(schema);
  });

  async function timeline(sid: string): Promise<Envelope[]> {
    const end = Math.ceil(Date.now() / 1000) + 60;
    const res = await api<{ events: Envelope[]; next_cursor: string | null }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=${end}&limit=10000`);
    expect(res.status).toBe(200);
    return res.body.events;
  }

  const types = (events: Envelope[]): string[] => events.map((e) => e.routing.event_type);

  async function onlineSid(): Promise<string> {
    return waitFor(async () => {
      const res = await api<{ sensors: Array<{ sid: string; is_online?: boolean }> }>('GET', `/v1/sensors/${server.credentials.oid}`);
      const sensor = res.body.sensors?.[0];
      if (!sensor) return undefined;
      const one = await api<{ is_online: boolean }>('GET', `/v1/${sensor.sid}`);
      return one.body.is_online ? sensor.sid : undefined;
    }, { message: 'the sensor to be online' });
  }

  let sid = '';

  it('a sensor started with the installation key enrolls, is online, and reports enrollment, CONNECTED and STARTING_UP', async () => {
    const sensor = startSensorProcess({ url: server.url, key: server.credentials.installation_key, stateDir, hostname: 'lifecycle-host' });
    sensors.push(sensor);
    sid = await onlineSid();
    expect(isUuid(sid)).toBe(true);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return types(ev).includes('STARTING_UP') ? ev : undefined;
    }, { message: 'STARTING_UP in the timeline' });
    expect(types(events).filter((t) => t === 'enrollment')).toHaveLength(1);
    expect(types(events).filter((t) => t === 'CONNECTED')).toHaveLength(1);
    const connected = events.find((e) => e.routing.event_type === 'CONNECTED')!;
    expect(connected.event.HOST_NAME).toBe('lifecycle-host');
    expect(connected.routing.hostname).toBe('lifecycle-host');
  });

  it('keeps its identity in a file only its user can read', () => {
    const files = readdirSync(stateDir);
    const identity = files.find((f) => f.includes('identity'));
    expect(identity, `state dir holds ${files.join(', ')}`).toBeDefined();
    expect(statSync(path.join(stateDir, identity!)).mode & 0o077).toBe(0);
  });

  it('every stored event carries the routing fields of decisions.md §1 with the right types', async () => {
    const events = await timeline(sid);
    expect(events.length).toBeGreaterThanOrEqual(3);
    for (const e of events) {
      const check = validateEvent(e, { produced: true });
      expect(check, JSON.stringify(e)).toMatchObject({ valid: true });
      expect(Number.isInteger(e.routing.event_time)).toBe(true);
      expect(e.routing.event_time).toBeGreaterThan(1e12);
      expect(isUuid(e.routing.event_id)).toBe(true);
      expect(Array.isArray(e.routing.tags)).toBe(true);
      expect(e.routing.oid).toBe(server.credentials.oid);
      expect(e.routing.sid).toBe(sid);
    }
  });

  it('after SIGTERM the sensor sends SHUTTING_DOWN, then the cloud records DISCONNECTED', async () => {
    const sensor = sensors[0]!;
    sensor.kill('SIGTERM');
    const exit = await sensor.exited;
    expect(exit.code, sensor.output()).toBe(0);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return types(ev).includes('DISCONNECTED') ? ev : undefined;
    }, { message: 'DISCONNECTED after SIGTERM' });
    const t = types(events);
    expect(t).toContain('SHUTTING_DOWN');
    expect(t.indexOf('SHUTTING_DOWN')).toBeLessThan(t.indexOf('DISCONNECTED'));
    const disconnected = events.find((e) => e.routing.event_type === 'DISCONNECTED')!;
    expect(disconnected.event.reason).toBe('closed');
    expect(typeof disconnected.event.ts).toBe('number');
    const one = await api<{ is_online: boolean }>('GET', `/v1/${sid}`);
    expect(one.body.is_online).toBe(false);
  });

  it('a restarted sensor reuses its sid and emits no second enrollment', async () => {
    const sensor = startSensorProcess({ url: server.url, stateDir, hostname: 'lifecycle-host' });
    sensors.push(sensor);
    expect(await onlineSid()).toBe(sid);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return types(ev).filter((t) => t === 'STARTING_UP').length === 2 ? ev : undefined;
    }, { message: 'the second STARTING_UP' });
    expect(types(events).filter((t) => t === 'enrollment')).toHaveLength(1);
    expect(types(events).filter((t) => t === 'CONNECTED')).toHaveLength(2);
    const list = await api<{ sensors: unknown[] }>('GET', `/v1/sensors/${server.credentials.oid}`);
    expect(list.body.sensors).toHaveLength(1);
  });

  it('after SIGKILL of the sensor the cloud records DISCONNECTED within the liveness timeout', async () => {
    const sensor = sensors[1]!;
    const before = types(await timeline(sid)).filter((t) => t === 'DISCONNECTED').length;
    const killedAt = Date.now();
    sensor.kill('SIGKILL');
    await sensor.exited;
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return types(ev).filter((t) => t === 'DISCONNECTED').length === before + 1 ? ev : undefined;
    }, { timeoutMs: 3000 + 2000, message: 'DISCONNECTED after SIGKILL' });
    const last = events.filter((e) => e.routing.event_type === 'DISCONNECTED').at(-1)!;
    expect(last.routing.event_time - killedAt).toBeLessThan(3000 + 1000);
    expect(types(events).filter((t) => t === 'SHUTTING_DOWN')).toHaveLength(1);
    const one = await api<{ is_online: boolean }>('GET', `/v1/${sid}`);
    expect(one.body.is_online).toBe(false);
  });

  it('after SIGINT (Ctrl-C) the sensor sends SHUTTING_DOWN, then the cloud records DISCONNECTED', async () => {
    const sensor = startSensorProcess({ url: server.url, stateDir, hostname: 'lifecycle-host' });
    sensors.push(sensor);
    const count = (events: Envelope[], type: string): number => types(events).filter((t) => t === type).length;
    const before = await timeline(sid);
    const startsBefore = count(before, 'STARTING_UP');
    await waitFor(async () => count(await timeline(sid), 'STARTING_UP') === startsBefore + 1, { message: 'the restarted sensor to report STARTING_UP' });
    expect(await onlineSid()).toBe(sid);
    const shutdownsBefore = count(before, 'SHUTTING_DOWN');
    const disconnectsBefore = count(await timeline(sid), 'DISCONNECTED');

    sensor.kill('SIGINT');
    const exit = await sensor.exited;
    expect(exit.code, sensor.output()).toBe(0);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return count(ev, 'DISCONNECTED') === disconnectsBefore + 1 ? ev : undefined;
    }, { message: 'DISCONNECTED after SIGINT' });
    expect(count(events, 'SHUTTING_DOWN')).toBe(shutdownsBefore + 1);
    const t = types(events);
    const lastStart = t.lastIndexOf('STARTING_UP');
    const shutdown = t.lastIndexOf('SHUTTING_DOWN');
    const disconnected = t.lastIndexOf('DISCONNECTED');
    expect(lastStart).toBeLessThan(shutdown);
    expect(shutdown).toBeLessThan(disconnected);
    expect(events[disconnected]!.event.reason).toBe('closed');
    const one = await api<{ is_online: boolean }>('GET', `/v1/${sid}`);
    expect(one.body.is_online).toBe(false);
  });

  it.runIf(backend.postgres)('a second node on the same database is refused with a clear error (one node per database until the cluster mode)', async () => {
    await expect(startServerProcess({ args: ['--store', storeUrl(schema)] })).rejects.toThrow(/another Picket node is running on postgres:.*schema/);
  });
});
