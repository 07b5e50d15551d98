// Tasking end to end with real `picket sensor` processes against a `picket serve` process: each command
// of the reference sensor answers CLOUD_NOTIFICATION first, then its result event, both carrying the
// investigation id, with the ERROR codes of the reference table; `update` outlives a sensor restart; a host
// without nftables fails segregate/rejoin honestly. (Real network isolation, which needs a network
// namespace, is in test/isolation.test.ts.)
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { canIsolateHere, pathWithoutNft } from './harness/nft.js';
import { runCli, startSensorProcess, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; event_time: number; investigation_id?: string };
  event: Record<string, unknown>;
}

interface Task {
  task_id: string;
  state: string;
  error: number | null;
  answer: Envelope | null;
}

const FAR_S = 9_999_999_999;

describe('tasking a real sensor process', () => {
  let server: ServerProcess;
  let api: ReturnType<typeof apiClient>;
  const sensors: ManagedProcess[] = [];
  const dirs: string[] = [];
  let runner = ''; // started with --allow-run
  let plain = '';
  let noNft = ''; // a host without nftables
  let runnerDir = '';
  let runnerProc: ManagedProcess | undefined;

  beforeAll(async () => {
    server = await startServerProcess();
    api = apiClient(server.url, server.credentials.api_key);
    const start = async (hostname: string, args: string[], env?: Record<string, string>): Promise<[string, string]> => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-task-'));
      dirs.push(dir);
      sensors.push(startSensorProcess({ url: server.url, key: server.credentials.installation_key, stateDir: dir, hostname, args, ...(env ? { env } : {}) }));
      const sid = await waitFor(() => (existsSync(path.join(dir, 'identity.json')) ? (JSON.parse(readFileSync(path.join(dir, 'identity.json'), 'utf8')) as { sid: string }).sid : undefined), { message: `${hostname} enrolled` });
      await waitFor(async () => (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online, { message: `${hostname} online` });
      return [sid, dir];
    };
    [runner, runnerDir] = await start('task-runner', ['--allow-run']);
    runnerProc = sensors.at(-1);
    [plain] = await start('task-plain', []);
    [noNft] = await start('task-no-nft', [], { PATH: pathWithoutNft() });
  });

  afterAll(async () => {
    for (const s of sensors) s.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
  });

  async function task(sid: string, command: string, investigationId: string): Promise<Task> {
    const res = await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: [command], investigation_id: investigationId });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const created = res.body.tasks[0]!;
    expect(created.state).toBe('sent');
    return waitFor(async () => {
      const t = (await api<Task>('GET', `/v1/tasks/${created.task_id}`)).body;
      return t.state === 'answered' ? t : undefined;
    }, { timeoutMs: 20_000, message: `answer to ${command}` });
  }

  /** The sensor's events carrying this investigation id, in order: CLOUD_NOTIFICATION first, then the result. */
  async function eventsOf(sid: string, investigationId: string, count: number): Promise<Envelope[]> {
    return waitFor(async () => {
      const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=${FAR_S}&limit=10000`);
      const mine = res.body.events.filter((e) => e.routing.investigation_id === investigationId);
      return mine.length >= count ? mine : undefined;
    }, { message: `${count} events of ${investigationId}` });
  }

  async function expectAnswered(sid: string, command: string, resultType: string, error: number): Promise<Envelope> {
    const inv = `inv-${command.split(' ')[0]}-${Math.random().toString(36).slice(2, 8)}`;
    const t = await task(sid, command, inv);
    expect(t.error).toBe(error);
    expect(t.answer!.routing.event_type).toBe(resultType);
    // SELF_TEST (the cloud's record of the request) comes with the task's investigation id too.
    const events = (await eventsOf(sid, inv, command === 'selftest' ? 3 : 2)).filter((e) => e.routing.event_type !== 'SELF_TEST');
    const receipt = events[0]!;
    expect(receipt.routing.event_type).toBe('CLOUD_NOTIFICATION');
    expect(receipt.event).toMatchObject({ NOTIFICATION_ID: command.split(' ')[0], NOTIFICATION: { INVESTIGATION_ID: inv } });
    const ident = receipt.event.HCP_IDENT as Record<string, unknown>;
    expect(ident.HCP_SENSOR_ID).toBe(sid.replace(/-/g, ''));
    expect(ident).toMatchObject({ HCP_PLATFORM: 0x20000000, HCP_ARCHITECTURE: expect.any(Number) as number });
    const answer = events.find((e) => e.routing.event_type === resultType)!;
    expect(answer.event.ERROR).toBe(error);
    expect(answer.routing.event_time).toBeGreaterThanOrEqual(receipt.routing.event_time);
    for (const e of events) expect(validateEvent(e, { produced: true }).errors).toEqual([]);
    return answer;
  }

  async function timelineOf(sid: string, eventType: string): Promise<Envelope[]> {
    return (await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=${FAR_S}&event_type=${eventType}&limit=10000`)).body.events;
  }

  const isOnline = async (sid: string): Promise<boolean> => (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online;

  it('selftest: the cloud records SELF_TEST, the sensor answers SELF_TEST_RESULT with each check, passing none it did not check', async () => {
    // Isolation needs root and a working nft: the check passes exactly where this machine has them.
    const isolationReady = canIsolateHere();
    const answer = await expectAnswered(plain, 'selftest', 'SELF_TEST_RESULT', isolationReady ? 0 : 1);
    const checks = answer.event.CHECKS as Array<{ name: string; ok: boolean; detail: string }>;
    expect(checks.map((c) => c.name)).toEqual(['identity', 'state_dir_writable', 'event_buffer', 'clock', 'cloud_connection', 'network_isolation']);
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(isolationReady ? [] : ['network_isolation']);
    if (!isolationReady) expect(answer.event.ERROR_MESSAGE).toMatch(/network_isolation/);
    // On a host without nftables it fails, saying why, whatever this machine has.
    const bare = await expectAnswered(noNft, 'selftest', 'SELF_TEST_RESULT', 1);
    const bareChecks = bare.event.CHECKS as Array<{ name: string; ok: boolean; detail: string }>;
    expect(bareChecks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['network_isolation']);
    expect(bareChecks.find((c) => c.name === 'network_isolation')!.detail).toMatch(/nft \(nftables\) is not installed/);
    expect(bare.event.ERROR_MESSAGE).toMatch(/network_isolation/);
    const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${plain}?start=0&end=${FAR_S}&event_type=SELF_TEST`);
    expect(res.body.events.length).toBeGreaterThanOrEqual(1);
    expect(res.body.events[0]!.routing.investigation_id).toMatch(/^inv-selftest-/);
  });

  it('run: exit code and output when allowed, RECEIPT ERROR 5 when not, 87 for bad arguments, 1460 on timeout', async () => {
    const ok = await expectAnswered(runner, 'run --shell-command "echo picket; echo oops >&2; exit 3"', 'RUN', 0);
    expect(ok.event).toMatchObject({ EXIT_CODE: 3, STDOUT: 'picket\n', STDERR: 'oops\n', IS_STDOUT_TRUNCATED: false });
    const big = await expectAnswered(runner, 'run --shell-command "head -c 200000 /dev/zero | tr \'\\\\0\' x"', 'RUN', 0);
    expect((big.event.STDOUT as string).length).toBe(64 * 1024);
    expect(big.event.IS_STDOUT_TRUNCATED).toBe(true);
    expect((await expectAnswered(runner, 'run --shell-command "sleep 30" --timeout 1', 'RUN', 1460)).event.ERROR_MESSAGE).toMatch(/timed out/);
    expect((await expectAnswered(runner, 'run --payload-name x', 'RUN', 87)).event.ERROR_MESSAGE).toMatch(/unsupported option/);
    expect((await expectAnswered(plain, 'run --shell-command id', 'RECEIPT', 5)).event.ERROR_MESSAGE).toMatch(/--allow-run/);
  });

  it('set_performance_mode, unload_kernel (50) and update (applied and persisted; 87 for a bad config)', async () => {
    expect((await expectAnswered(runner, 'set_performance_mode --is-enabled', 'SET_PERFORMANCE_MODE', 0)).event.IS_ENABLED).toBe(true);
    expect((await expectAnswered(runner, 'unload_kernel', 'UNLOAD_KERNEL', 50)).event.ERROR_MESSAGE).toMatch(/no kernel component/);
    // Applied at once: with the cloud's interval at 600 s, SYNC now comes every second.
    const fast = await expectAnswered(runner, 'update --collector sync --config \'{"interval_s": 1}\'', 'UPDATE', 0);
    await waitFor(async () => {
      const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${runner}?start=0&end=${FAR_S}&event_type=SYNC&limit=1000`);
      return res.body.events.filter((e) => e.routing.event_time > fast.routing.event_time).length >= 2;
    }, { timeoutMs: 10_000, message: 'two SYNC after the update to a 1 s interval' });
    await expectAnswered(runner, 'update --collector sync --config \'{"interval_s": 3600}\'', 'UPDATE', 0);
    const config = JSON.parse(readFileSync(path.join(runnerDir, 'config.json'), 'utf8')) as { collectors: Record<string, unknown>; performance_mode: boolean };
    expect(config).toEqual({ collectors: { sync: { interval_s: 3600 } }, performance_mode: true });
    await expectAnswered(runner, 'update --collector sync --config "{not json"', 'UPDATE', 87);
    await expectAnswered(runner, 'update --collector nosuch --config {}', 'UPDATE', 87);
    await expectAnswered(runner, 'unload_kernel --now', 'UNLOAD_KERNEL', 87);
  });

  it('update survives a sensor restart: the saved configuration is applied again at start', async () => {
    await expectAnswered(runner, 'update --collector sync --config \'{"interval_s": 1}\'', 'UPDATE', 0);
    expect((JSON.parse(readFileSync(path.join(runnerDir, 'config.json'), 'utf8')) as { collectors: Record<string, unknown> }).collectors).toEqual({ sync: { interval_s: 1 } });
    const connectedBefore = (await timelineOf(runner, 'CONNECTED')).length;
    runnerProc!.kill('SIGTERM');
    await runnerProc!.exited;
    await waitFor(async () => !(await isOnline(runner)), { message: 'runner offline after the stop' });
    runnerProc = startSensorProcess({ url: server.url, key: server.credentials.installation_key, stateDir: runnerDir, hostname: 'task-runner', args: ['--allow-run'] });
    sensors.push(runnerProc);
    await waitFor(() => isOnline(runner), { message: 'runner back online' });
    const connected = await waitFor(async () => {
      const all = await timelineOf(runner, 'CONNECTED');
      return all.length > connectedBefore ? all.at(-1) : undefined;
    }, { message: 'a new CONNECTED' });
    // The cloud still asks for SYNC every 600 s: SYNC every second after the restart is the saved update at work.
    await waitFor(async () => (await timelineOf(runner, 'SYNC')).filter((e) => e.routing.event_time > connected.routing.event_time).length >= 2,
      { timeoutMs: 10_000, message: 'two SYNC after the restart, at the saved 1 s interval' });
    await expectAnswered(runner, 'update --collector sync --config \'{"interval_s": 3600}\'', 'UPDATE', 0);
  });

  it('a host without nftables: segregate_network and rejoin_network fail honestly (ERROR 50) and nothing claims isolation', async () => {
    // Without root the sensor refuses for that first (ERROR 5); as root (or off Linux) the missing nft is the reason.
    const expected = process.platform === 'linux' && process.getuid?.() !== 0 ? 5 : 50;
    const why = expected === 50 && process.platform === 'linux' ? /nft \(nftables\) is not installed/ : /./;
    expect((await timelineOf(noNft, 'CONNECTED')).at(-1)!.event.IS_SEGREGATED).toBe(0);
    const segregated = await expectAnswered(noNft, 'segregate_network', 'SEGREGATE_NETWORK', expected);
    expect(segregated.event.ERROR_MESSAGE).toMatch(why);
    expect((await api('GET', `/v1/${noNft}/isolation`)).body).toEqual({ should_isolate: false, is_isolated: false, task_id: null });
    const rejoined = await expectAnswered(noNft, 'rejoin_network', 'REJOIN_NETWORK', expected);
    expect(rejoined.event.ERROR_MESSAGE).toMatch(why);
    // A new session (the cloud asks it to reconnect): the sensor still says it is not segregated.
    const connectedBefore = (await timelineOf(noNft, 'CONNECTED')).length;
    expect((await api('POST', `/v1/${noNft}/reconnect`)).status).toBe(200);
    const connected = await waitFor(async () => {
      const all = await timelineOf(noNft, 'CONNECTED');
      return all.length > connectedBefore ? all.at(-1) : undefined;
    }, { message: 'CONNECTED of the new session' });
    expect(connected.event.IS_SEGREGATED).toBe(0);
    await waitFor(() => isOnline(noNft), { message: 'no-nft sensor online again' });
    expect((await api('GET', `/v1/${noNft}/isolation`)).body).toEqual({ should_isolate: false, is_isolated: false, task_id: null });
  });

  it('an unknown command is RECEIPT ERROR 50', async () => {
    expect((await expectAnswered(plain, 'frobnicate --hard', 'RECEIPT', 50)).event.ERROR_MESSAGE).toBe('unknown command: frobnicate');
  });

  it('picket task --wait prints the receipt and the answer; --json the answering event', async () => {
    const r = await runCli(['task', plain, 'unload_kernel', '--wait', '--json', '--investigation-id', 'cli-inv', '--data', server.dataDir]);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ step: 'sent' });
    const last = lines.at(-1) as unknown as Envelope;
    expect(last.routing.event_type).toBe('UNLOAD_KERNEL');
    expect(last.event.ERROR).toBe(50);
    // --investigation-id reaches the answer's routing, the task, and every event the task caused.
    expect(last.routing.investigation_id).toBe('cli-inv');
    expect((await api<{ investigation_id: string }>('GET', `/v1/tasks/${String(lines[0]!.task_id)}`)).body.investigation_id).toBe('cli-inv');
    expect((await eventsOf(plain, 'cli-inv', 2)).map((e) => e.routing.event_type)).toEqual(['CLOUD_NOTIFICATION', 'UNLOAD_KERNEL']);
    expect(r.code).toBe(3);
    const human = await runCli(['task', plain, 'set_performance_mode', '--wait', '--investigation-id', 'cli-inv-human', '--data', server.dataDir]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^answered\s+SET_PERFORMANCE_MODE\s+ERROR 0/m);
    expect((await eventsOf(plain, 'cli-inv-human', 2)).map((e) => e.routing.event_type)).toEqual(['CLOUD_NOTIFICATION', 'SET_PERFORMANCE_MODE']);
  });

  it('malformed task requests get clear API errors', async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      [plain, { tasks: [] }, 400, /no command line/],
      [plain, { tasks: ['   '] }, 400, /no command line/],
      [plain, {}, 400, /tasks/],
      [plain, { tasks: ['run --shell-command "unterminated'] }, 400, /unterminated double quote/],
      [plain, { tasks: Array.from({ length: 101 }, () => 'selftest') }, 400, /at most 100/],
      [plain, { tasks: ['x'.repeat(20_000)] }, 400, /tasks.*4096 characters/],
      [plain, { tasks: ['selftest'], ttl: 0 }, 400, /ttl/],
      ['00000000-0000-4000-8000-000000000000', { tasks: ['selftest'] }, 404, /not found/],
      ['not-a-sid', { tasks: ['selftest'] }, 404, /not found/],
    ];
    for (const [sid, body, status, message] of cases) {
      const res = await api<{ error: string }>('POST', `/v1/${sid}`, body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(res.body.error).toMatch(message);
    }
    // Another organization's sensor, its tasks and its isolation flag do not exist for this key.
    const other = await api<{ api_key: string }>('POST', '/v1/orgs', { name: 'elsewhere' });
    const stranger = apiClient(server.url, other.body.api_key);
    const res = await stranger<{ error: string }>('POST', `/v1/${plain}`, { tasks: ['selftest'] });
    expect(res.status).toBe(404);
    expect((await stranger('GET', `/v1/${plain}/tasks`)).status).toBe(404);
    const [mine] = (await api<{ tasks: Task[] }>('GET', `/v1/${plain}/tasks?limit=1`)).body.tasks as [Task];
    expect((await api('GET', `/v1/tasks/${mine.task_id}`)).status).toBe(200);
    const read = await stranger<{ error: string }>('GET', `/v1/tasks/${mine.task_id}`);
    expect(read.status).toBe(404);
    expect(read.body.error).toBe(`task ${mine.task_id} not found`);
    for (const method of ['POST', 'DELETE', 'GET']) {
      const isolation = await stranger<{ error: string }>(method, `/v1/${plain}/isolation`);
      expect(isolation.status, `${method} /v1/{sid}/isolation`).toBe(404);
      expect(isolation.body.error).toMatch(/not found/);
    }
    // Nothing changed and nothing was sent: the flag is unset, and no isolation task was created.
    expect((await api<{ should_isolate: boolean }>('GET', `/v1/${plain}/isolation`)).body.should_isolate).toBe(false);
    const after = (await api<{ tasks: Array<Task & { command: string }> }>('GET', `/v1/${plain}/tasks`)).body.tasks;
    expect(after.filter((x) => /segregate_network|rejoin_network/.test(x.command))).toEqual([]);
  });
});
