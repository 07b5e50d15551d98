// Deployment guards with real `picket sensor` processes against a real `picket serve` process, as an
// operator meets them: a golden-image clone fixed by a re-enroll, a sensor over quota that obeys its
// retry-after and gets in when the quota is raised, a deleted sensor that stops hammering and comes back
// after an undelete, and the debug crash switch producing exactly one sensor_crash.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { startSensorProcess, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; sid?: string };
  event: Record<string, unknown>;
}

const FAR_S = 9_999_999_999;

describe('deployment guards with real sensor processes', () => {
  let server: ServerProcess;
  let api: ReturnType<typeof apiClient>;
  const sensors: ManagedProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    // Short refusal delays so a refused sensor comes back within the test.
    server = await startServerProcess({ env: { PICKET_REFUSAL_RETRY_BASE: '0.5', PICKET_REFUSAL_RETRY_CAP: '2' } });
    api = apiClient(server.url, server.credentials.api_key);
  });

  afterAll(async () => {
    for (const s of sensors) s.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
  });

  function stateDir(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-guard-'));
    dirs.push(dir);
    return dir;
  }

  function sensor(dir: string, hostname: string, args: string[] = []): ManagedProcess {
    const p = startSensorProcess({
      url: server.url, key: server.credentials.installation_key, stateDir: dir, hostname,
      // Fast reconnects for the test; the retry-after the cloud sends is a floor on top of them.
      args: ['--fingerprint', `fp-${hostname}`, '--reconnect-base', '0.1', '--reconnect-cap', '0.5', ...args],
    });
    sensors.push(p);
    return p;
  }

  const sidOf = (dir: string): string => (JSON.parse(readFileSync(path.join(dir, 'identity.json'), 'utf8')) as { sid: string }).sid;

  async function online(sid: string): Promise<boolean> {
    return (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online === true;
  }

  async function deployment(): Promise<Envelope[]> {
    return (await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/stream/deployment?start=0&end=${FAR_S}&limit=10000`)).body.events;
  }

  async function stop(p: ManagedProcess): Promise<void> {
    p.kill('SIGTERM');
    await p.exited;
  }

  it('a copied identity file on another host is a clone; re-enroll gives the copy a new sid and the original keeps its own', async () => {
    const dirA = stateDir();
    const a = sensor(dirA, 'golden-a');
    const sidA = await waitFor(() => (existsSync(path.join(dirA, 'identity.json')) ? sidOf(dirA) : undefined), { message: 'sensor A enrolled' });
    await waitFor(() => online(sidA), { message: 'A online' });

    const dirB = stateDir();
    copyFileSync(path.join(dirA, 'identity.json'), path.join(dirB, 'identity.json'));
    const b = sensor(dirB, 'golden-b');
    const clone = await waitFor(async () => (await deployment()).find((e) => e.routing.event_type === 'sensor_clone' && e.routing.sid === sidA), { message: 'sensor_clone' });
    expect(clone.event).toEqual({ previous_hostname: 'golden-a', new_hostname: 'golden-b' });
    expect(await online(sidA)).toBe(true);

    const order = await api<{ delivered: boolean }>('POST', `/v1/${sidA}/reenroll`, { hostname: 'golden-b' });
    expect(order.status).toBe(200);
    // B is told on its next attempt, drops the copied identity and enrolls as a new sensor.
    const sidB = await waitFor(() => {
      const sid = existsSync(path.join(dirB, 'identity.json')) ? sidOf(dirB) : undefined;
      return sid && sid !== sidA ? sid : undefined;
    }, { timeoutMs: 20_000, message: 'B re-enrolled with a new sid' });
    await waitFor(() => online(sidB), { message: 'B online' });
    expect(sidOf(dirA)).toBe(sidA);
    expect(await online(sidA)).toBe(true);
    const events = await deployment();
    expect(events.filter((e) => e.routing.event_type === 'enrollment' && e.routing.sid === sidB)).toHaveLength(1);
    expect((await api<{ info: { hostname: string } }>('GET', `/v1/${sidB}`)).body.info.hostname).toBe('golden-b');
    await stop(a);
    await stop(b);
  });

  it('a sensor over quota obeys the growing retry-after and gets in when the quota is raised', async () => {
    const online0 = (await api<{ usage: number }>('GET', `/v1/quota_usage/${server.credentials.oid}`)).body.usage;
    expect((await api('POST', `/v1/orgs/${server.credentials.oid}/quota`, { quota: online0 + 1 })).status).toBe(200);
    const dirIn = stateDir();
    const inside = sensor(dirIn, 'quota-in');
    await waitFor(async () => existsSync(path.join(dirIn, 'identity.json')) && online(sidOf(dirIn)), { message: 'first sensor online' });

    const dirOut = stateDir();
    const outside = sensor(dirOut, 'quota-out');
    // Enrolled but refused: it keeps the identity the refusal carried.
    const sid = await waitFor(() => (existsSync(path.join(dirOut, 'identity.json')) ? sidOf(dirOut) : undefined), { message: 'refused sensor keeps its identity' });
    const refusals = () => outside.logs('stderr').filter((l) => l.msg === 'sensor disconnected' && l.code === 4010);
    await waitFor(() => refusals().length >= 3, { timeoutMs: 20_000, message: 'three refusals' });
    const waits = refusals().map((l) => Number(l.retry_in_ms));
    // Each wait is at least the retry-after, which doubles: 0.5 s, 1 s, 2 s (capped).
    expect(waits[0]).toBeGreaterThanOrEqual(500);
    expect(waits[1]).toBeGreaterThanOrEqual(1000);
    expect(waits[2]).toBeGreaterThanOrEqual(2000);
    expect(await online(sid)).toBe(false);
    const refused = await api<{ info: { state: string; state_reason: string } }>('GET', `/v1/${sid}`);
    expect(refused.body.info.state).toBe('refused');

    expect((await api('POST', `/v1/orgs/${server.credentials.oid}/quota`, { quota: online0 + 2 })).status).toBe(200);
    await waitFor(() => online(sid), { timeoutMs: 20_000, message: 'refused sensor admitted after the raise' });
    const overQuota = (await deployment()).filter((e) => e.routing.event_type === 'sensor_over_quota' && e.routing.sid === sid);
    expect(overQuota).toHaveLength(1);
    expect(overQuota[0]!.event).toMatchObject({ host_name: 'quota-out', public_ip: '127.0.0.1' });
    await api('POST', `/v1/orgs/${server.credentials.oid}/quota`, { quota: null });
    await stop(inside);
    await stop(outside);
  });

  it('a deleted sensor stops hammering the cloud and comes back with the same sid after an undelete', async () => {
    const dir = stateDir();
    const p = sensor(dir, 'to-delete', ['--denied-retry', '1']);
    const sid = await waitFor(async () => (existsSync(path.join(dir, 'identity.json')) && (await online(sidOf(dir))) ? sidOf(dir) : undefined), { message: 'online' });
    expect((await api('DELETE', `/v1/${sid}`)).status).toBe(200);
    const refusals = () => p.logs('stderr').filter((l) => l.code === 4011 && typeof l.retry_in_ms === 'number');
    await waitFor(() => refusals().length >= 2, { timeoutMs: 20_000, message: 'two refused attempts' });
    expect(p.running).toBe(true);
    const waits = refusals().map((l) => Number(l.retry_in_ms));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1000);
    expect((await deployment()).filter((e) => e.routing.event_type === 'deleted_sensor' && e.routing.sid === sid)).toHaveLength(1);

    expect((await api('POST', `/v1/${sid}/undelete`)).status).toBe(200);
    await waitFor(() => online(sid), { timeoutMs: 20_000, message: 'back online after the undelete' });
    expect(sidOf(dir)).toBe(sid);
    await stop(p);
  });

  it('the debug crash switch, then a restart, produce exactly one sensor_crash with the three context fields', async () => {
    const dir = stateDir();
    const crashing = sensor(dir, 'crasher', ['--debug-crash', 'exception']);
    const exit = await crashing.exited;
    expect(exit.code).toBe(70);
    const sid = sidOf(dir);
    expect(existsSync(path.join(dir, 'crash.json'))).toBe(true);

    const restarted = sensor(dir, 'crasher');
    await waitFor(() => !existsSync(path.join(dir, 'crash.json')), { timeoutMs: 20_000, message: 'crash reported' });
    await waitFor(() => online(sid), { message: 'restarted sensor online' });
    await stop(restarted);
    const again = sensor(dir, 'crasher');
    await waitFor(() => online(sid), { message: 'online again' });

    const crashes = (await deployment()).filter((e) => e.routing.event_type === 'sensor_crash' && e.routing.sid === sid);
    expect(crashes).toHaveLength(1);
    const context = (crashes[0]!.event as { crash_context: Record<string, number> }).crash_context;
    expect(Object.keys(context).sort()).toEqual(['FILE_ID', 'LINE_NUMBER', 'THREAD_ID']);
    expect(context.LINE_NUMBER).toBeGreaterThan(0);
    expect(context.FILE_ID).toBeGreaterThan(0);
    expect(crashes[0]!.routing).toMatchObject({ sid, hostname: 'crasher', ext_ip: '127.0.0.1', oid: server.credentials.oid });
    await stop(again);

    for (const e of await deployment()) expect(validateEvent(e, { produced: true }).errors, e.routing.event_type).toEqual([]);
  });

  it('a fatal signal is recorded too: FILE_ID 0 and the signal number as LINE_NUMBER', async () => {
    const dir = stateDir();
    const crashing = sensor(dir, 'signalled', ['--debug-crash', 'signal']);
    expect((await crashing.exited).code).toBe(128 + 6);
    const sid = sidOf(dir);
    const restarted = sensor(dir, 'signalled');
    const crash = await waitFor(async () => (await deployment()).find((e) => e.routing.event_type === 'sensor_crash' && e.routing.sid === sid), { timeoutMs: 20_000, message: 'sensor_crash' });
    expect(crash.event).toEqual({ crash_context: { FILE_ID: 0, LINE_NUMBER: 6, THREAD_ID: expect.any(Number) as number } });
    const info = await api<{ info: { last_issue: { kind: string; reason: string } } }>('GET', `/v1/${sid}`);
    expect(info.body.info.last_issue).toMatchObject({ kind: 'crash' });
    expect(info.body.info.last_issue.reason).toMatch(/fatal signal SIGABRT/);
    await stop(restarted);
  });
});
