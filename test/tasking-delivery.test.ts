// Task delivery over real sockets to an in-process server with an injectable clock: queued tasks reach a
// sensor on its next session unless they expired first, answers move each task forward and only its own
// sensor can answer it, and 1,000 simulated sensors tasked at once each answer their own task.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TaskMessage } from '../src/protocol/messages.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { runCli } from './harness/processes.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Task {
  task_id: string;
  sid: string;
  command: string;
  state: string;
  expires: string | null;
  error: number | null;
  investigation_id: string | null;
  answer: { routing: { sid: string; investigation_id?: string; event_type: string }; event: Record<string, unknown> } | null;
}

describe('task delivery', () => {
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

  async function enrolled(hostname: string): Promise<{ client: ProtocolClient; sid: string; secret: string }> {
    const client = new ProtocolClient(t.url);
    clients.push(client);
    await client.hello({ installation_key: t.installationKey }, { host: { hostname } });
    const w = await client.welcome();
    return { client, sid: w.sid, secret: w.identity!.secret };
  }

  const getTask = async (id: string): Promise<Task> => (await api<Task>('GET', `/v1/tasks/${id}`)).body;

  it('an offline sensor gets 409 without a ttl; queued tasks arrive on its next session, expired ones never', async () => {
    const { client, sid, secret } = await enrolled('offline-1');
    client.close();
    await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline' });

    const refused = await api<{ error: string; code: string }>('POST', `/v1/${sid}`, { tasks: ['selftest'] });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'SENSOR_OFFLINE' });
    expect(refused.body.error).toMatch(/offline.*ttl/);

    const short = (await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['unload_kernel'], ttl: 60, investigation_id: 'short' })).body.tasks[0]!;
    const long = (await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['run --shell-command "echo hi"'], ttl: 3600, investigation_id: 'long' })).body.tasks[0]!;
    expect(short.state).toBe('queued');
    expect(long.expires).not.toBeNull();
    offset += 120_000;

    const back = new ProtocolClient(t.url);
    clients.push(back);
    await back.hello({ sid, secret }, { host: { hostname: 'offline-1' } });
    await back.welcome();
    const delivered = (await back.next('task')) as TaskMessage;
    expect(delivered).toMatchObject({ t: 'task', task_id: long.task_id, sid, command: 'run --shell-command "echo hi"', investigation_id: 'long' });
    expect(delivered.expiry).toBe(Math.floor((Date.parse(long.expires!)) / 1000));
    expect((await getTask(short.task_id)).state).toBe('expired');
    expect((await getTask(long.task_id)).state).toBe('sent');
    expect(back.messages.filter((m) => m.t === 'task')).toHaveLength(1);

    // The answers move it forward: received, then answered with the result event.
    const now = Date.now();
    back.sendEvents(1, [{ event_type: 'CLOUD_NOTIFICATION', event_time: now, task_id: long.task_id, investigation_id: 'long', event: {
      NOTIFICATION_ID: 'run', NOTIFICATION: { INVESTIGATION_ID: 'long' }, EXPIRY: delivered.expiry,
      HCP_IDENT: { HCP_ORG_ID: t.oid.replace(/-/g, ''), HCP_SENSOR_ID: sid.replace(/-/g, ''), HCP_INSTALLER_ID: '0'.repeat(32), HCP_ARCHITECTURE: 2, HCP_PLATFORM: 0x20000000 },
    } }]);
    await waitFor(async () => (await getTask(long.task_id)).state === 'received', { message: 'received' });
    back.sendEvents(2, [{ event_type: 'RECEIPT', event_time: now + 1, task_id: long.task_id, investigation_id: 'long', event: { ERROR: 5, ERROR_MESSAGE: 'run is disabled' } }]);
    const answered = await waitFor(async () => {
      const x = await getTask(long.task_id);
      return x.state === 'answered' ? x : undefined;
    }, { message: 'answered' });
    expect(answered).toMatchObject({ error: 5, answer: { routing: { event_type: 'RECEIPT', investigation_id: 'long', sid }, event: { ERROR: 5 } } });
    const listed = (await api<{ tasks: Task[] }>('GET', `/v1/${sid}/tasks`)).body.tasks;
    expect(listed.map((x) => [x.task_id, x.state])).toEqual([[long.task_id, 'answered'], [short.task_id, 'expired']]);
  });

  it('a queued or sent task reads expired once its expiry passes, without the sensor coming back; picket task --wait says so', async () => {
    const { client, sid } = await enrolled('late-1');
    const live = (await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['selftest'], investigation_id: 'late-live' })).body.tasks[0]!;
    const told = (await client.next('task')) as TaskMessage;
    // A live task's deadline is the EXPIRY the sensor was told (10 minutes), and the API shows it.
    expect(live.state).toBe('sent');
    expect(told.expiry).toBe(Math.floor(Date.parse(live.expires!) / 1000));
    client.close();
    await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline' });
    const queued = (await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['unload_kernel'], ttl: 60 })).body.tasks[0]!;
    expect((await getTask(queued.task_id)).state).toBe('queued');

    offset += 61_000;
    expect((await getTask(queued.task_id)).state).toBe('expired');
    expect((await getTask(live.task_id)).state).toBe('sent');
    offset += 10 * 60_000;
    expect((await getTask(live.task_id)).state).toBe('expired');
    const listed = (await api<{ tasks: Task[] }>('GET', `/v1/${sid}/tasks`)).body.tasks;
    expect(listed.map((x) => [x.task_id, x.state])).toEqual([[queued.task_id, 'expired'], [live.task_id, 'expired']]);

    // The CLI, following a queued task, reports the expiry and exits non-zero.
    const cli = runCli(['task', sid, 'unload_kernel', '--ttl', '60', '--wait', '--json', '--url', t.url, '--api-key', t.apiKey]);
    const waiting = await waitFor(async () => (await api<{ tasks: Task[] }>('GET', `/v1/${sid}/tasks`)).body.tasks.find((x) => x.state === 'queued'), { message: 'the CLI\'s task queued' });
    offset += 61_000;
    const r = await cli;
    const steps = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: string; task_id: string; state: string });
    expect(steps).toEqual([{ step: 'queued', task_id: waiting.task_id, state: 'queued' }, { step: 'expired', task_id: waiting.task_id, state: 'expired' }]);
    expect(r.code).toBe(4);
  });

  it('accepts tasks form-encoded as the platform\'s clients send them (repeated tasks fields)', async () => {
    const { client, sid } = await enrolled('form-1');
    const body = new URLSearchParams([['tasks', 'run --shell-command "echo a, b"'], ['tasks', 'unload_kernel'], ['investigation_id', 'form-inv']]);
    const res = await fetch(`${t.url}/v1/${sid}`, { method: 'POST', headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(res.status).toBe(200);
    const tasks = ((await res.json()) as { tasks: Task[] }).tasks;
    expect(tasks.map((x) => [x.state, x.investigation_id])).toEqual([['sent', 'form-inv'], ['sent', 'form-inv']]);
    await waitFor(() => client.messages.filter((m) => m.t === 'task').length === 2, { message: 'both tasks delivered' });
    expect(client.messages.filter((m): m is TaskMessage => m.t === 'task').map((m) => m.command)).toEqual(['run --shell-command "echo a, b"', 'unload_kernel']);
    // One form field is one command line, commas and all.
    const single = await fetch(`${t.url}/v1/${sid}`, { method: 'POST', headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'tasks=run+--shell-command+%22echo+x%2Cy%22' });
    expect(((await single.json()) as { tasks: Task[] }).tasks.map((x) => x.command)).toEqual(['run --shell-command "echo x,y"']);
  });

  it('a sensor cannot answer another sensor\'s task', async () => {
    const a = await enrolled('owner');
    const b = await enrolled('intruder');
    const task = (await api<{ tasks: Task[] }>('POST', `/v1/${a.sid}`, { tasks: ['selftest'] })).body.tasks[0]!;
    await a.client.next('task');
    b.client.sendEvents(1, [{ event_type: 'RECEIPT', event_time: Date.now(), task_id: task.task_id, event: { ERROR: 0 } }]);
    await b.client.waitForAck(1);
    await t.server.writer.drain();
    expect((await getTask(task.task_id)).state).toBe('sent');
    // Nor can another organization read it: its key gets the same 404 as for a task that does not exist.
    const other = await api<{ api_key: string }>('POST', '/v1/orgs', { name: 'other-org' });
    expect(other.status, JSON.stringify(other.body)).toBeLessThan(300);
    const stranger = apiClient(t.url, other.body.api_key);
    expect((await api('GET', `/v1/tasks/${task.task_id}`)).status).toBe(200);
    const hidden = await stranger<{ error: string }>('GET', `/v1/tasks/${task.task_id}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.error).toBe(`task ${task.task_id} not found`);
  });

  it('a sensor connected here is tasked from its session (no store read of the sensor), SELF_TEST routed as its own events; deleted, it is not tasked', async () => {
    const { client, sid } = await enrolled('tasked-live');
    // A tag added while it is connected is part of its session's routing from then on.
    expect((await api('POST', `/v1/${sid}/tags`, { tags: ['vip'] })).status).toBe(200);
    const reads = vi.spyOn(t.server.store, 'getSensor');
    const created = await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['selftest'], investigation_id: 'live-1' });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    expect(created.body.tasks[0]!.state).toBe('sent');
    expect(reads).not.toHaveBeenCalled();
    reads.mockRestore();
    expect(((await client.next('task')) as TaskMessage).task_id).toBe(created.body.tasks[0]!.task_id);
    await t.server.writer.drain();
    type Routed = { routing: { event_type: string; investigation_id?: string; hostname: string; tags: string[]; oid: string } };
    const timeline = await api<{ events: Routed[] }>('GET', `/v1/insight/${t.oid}/${sid}?start=0&end=9999999999&limit=100`);
    const selfTest = timeline.body.events.find((e) => e.routing.event_type === 'SELF_TEST');
    expect(selfTest?.routing).toMatchObject({ investigation_id: 'live-1', hostname: 'tasked-live', tags: ['vip'], oid: t.oid });
    // Deleted: its session closes and the sensor is refused, from the store.
    expect((await api('DELETE', `/v1/${sid}`)).status).toBe(200);
    const refused = await api<{ error: string }>('POST', `/v1/${sid}`, { tasks: ['selftest'] });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatch(/deleted/);
  });

  it('a tag given a ttl leaves the routing of a connected sensor\'s events, and of its SELF_TEST, once it expires', async () => {
    const { client, sid } = await enrolled('expiring-tags');
    expect((await api('POST', `/v1/${sid}/tags`, { tags: ['keep'] })).status).toBe(200);
    expect((await api('POST', `/v1/${sid}/tags`, { tags: ['brief'], ttl: 60 })).status).toBe(200);
    type Routed = { routing: { event_type: string; tags: string[]; investigation_id?: string }; event: Record<string, unknown> };
    const routed = async (type: string, investigationId?: string): Promise<Routed[]> => {
      await t.server.writer.drain();
      const res = await api<{ events: Routed[] }>('GET', `/v1/insight/${t.oid}/${sid}?start=0&end=9999999999&limit=1000`);
      return res.body.events.filter((e) => e.routing.event_type === type && (investigationId === undefined || e.routing.investigation_id === investigationId));
    };
    client.sendEvents(1, [{ event_type: 'NEW_PROCESS', event_time: Date.now() + offset, event: { FILE_PATH: '/bin/before' } }]);
    await client.waitForAck(1);
    expect((await routed('NEW_PROCESS')).map((e) => [e.event.FILE_PATH, [...e.routing.tags].sort()])).toEqual([['/bin/before', ['brief', 'keep']]]);
    offset += 61_000;
    client.sendEvents(2, [{ event_type: 'NEW_PROCESS', event_time: Date.now() + offset, event: { FILE_PATH: '/bin/after' } }]);
    await client.waitForAck(2);
    expect((await routed('NEW_PROCESS')).find((e) => e.event.FILE_PATH === '/bin/after')?.routing.tags).toEqual(['keep']);
    expect(Object.keys((await api<{ tags: Record<string, Record<string, unknown>> }>('GET', `/v1/${sid}/tags`)).body.tags[sid] ?? {})).toEqual(['keep']);
    const task = await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['selftest'], investigation_id: 'after-expiry' });
    expect(task.status, JSON.stringify(task.body)).toBe(200);
    expect((await routed('SELF_TEST', 'after-expiry'))[0]?.routing.tags).toEqual(['keep']);
  });

  it('the persistent isolation flag is re-applied on every reconnect of a host that is not isolated', async () => {
    const { client, sid, secret } = await enrolled('flagged');
    const set = await api<{ should_isolate: boolean; task_id: string }>('POST', `/v1/${sid}/isolation`);
    expect(set.body.should_isolate).toBe(true);
    const first = (await client.next('task')) as TaskMessage;
    expect(first).toMatchObject({ task_id: set.body.task_id, command: 'segregate_network', investigation_id: '__isolation' });
    client.close();
    await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline' });
    const again = new ProtocolClient(t.url);
    clients.push(again);
    await again.hello({ sid, secret }, { host: { hostname: 'flagged', is_segregated: false } });
    expect(await again.next('task')).toMatchObject({ command: 'segregate_network', investigation_id: '__isolation' });
    // A host that reports itself isolated is left alone.
    again.close();
    await waitFor(() => !t.server.registry.isOnline(sid), { message: 'offline again' });
    const isolated = new ProtocolClient(t.url);
    clients.push(isolated);
    await isolated.hello({ sid, secret }, { host: { hostname: 'flagged', is_segregated: true } });
    await isolated.welcome();
    await t.server.writer.drain();
    expect((await api<{ is_isolated: boolean; should_isolate: boolean }>('GET', `/v1/${sid}/isolation`)).body).toMatchObject({ should_isolate: true, is_isolated: true });
    expect(isolated.messages.some((m) => m.t === 'task')).toBe(false);
    const lifted = await api<{ should_isolate: boolean; task_id: string }>('DELETE', `/v1/${sid}/isolation`);
    expect(lifted.body.should_isolate).toBe(false);
    expect(await isolated.next('task')).toMatchObject({ task_id: lifted.body.task_id, command: 'rejoin_network' });
  });

  it('1,000 simulated sensors tasked at once: every one answers, each answer routed to its own task', async () => {
    const sim = new FleetSimulator({ url: t.url, installationKey: t.installationKey, sensors: 1000, encoding: 'msgpack', connectRate: 2000, connectConcurrency: 200, maxInflight: 4, hostnamePrefix: 'tasked', seed: 5 });
    try {
      expect(await sim.connectAll(60_000)).toBe(1000);
      const sids = sim.sensors.map((s) => s.sid!);
      const created = await Promise.all(sids.map(async (sid, i) => {
        const res = await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: ['selftest'], investigation_id: `fleet-${i}` });
        expect(res.status).toBe(200);
        return res.body.tasks[0]!;
      }));
      await waitFor(() => sim.sensors.every((s) => s.tasksAnswered === 1), { timeoutMs: 60_000, message: 'every simulated sensor answered' });
      const answered = await waitFor(async () => {
        const all = await Promise.all(created.map((c) => getTask(c.task_id)));
        return all.every((x) => x.state === 'answered') ? all : undefined;
      }, { timeoutMs: 60_000, intervalMs: 250, message: 'all 1000 tasks answered' });
      for (const [i, task] of answered.entries()) {
        expect(task.sid).toBe(sids[i]);
        expect(task.answer!.routing).toMatchObject({ sid: sids[i], investigation_id: `fleet-${i}`, event_type: 'RECEIPT' });
        expect(task.error).toBe(0);
      }
    } finally {
      await sim.close();
    }
  }, 120_000);
});
