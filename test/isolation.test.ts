// Real network isolation (nftables) of a real sensor process inside a Linux network namespace created by
// the test: a peer address answers before segregate_network, not after (while the cloud connection and
// the sensor stay up), again after rejoin_network; a sensor restarted while isolated comes back isolated;
// the persistent flag isolates the host again after a restart that lost the rules (a reboot); loopback answers
// while isolated, and a table of the host's own (`inet hostfw`) is left alone by segregate and rejoin.
// Needs root, iproute2 and nft: skipped with a message where the machine cannot, never when CI=true.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ManagedProcess, freePort, startServerProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const suffix = `${process.pid % 10000}`;
const NS = `pkiso${suffix}`;
const VETH_HOST = `pkh${suffix}`;
const VETH_NS = `pkn${suffix}`;
const octet = 10 + (process.pid % 200);
const CLOUD_IP = `10.213.${octet}.1`;
const SENSOR_IP = `10.213.${octet}.2`;
const PEER_IP = `10.213.${octet}.3`;

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe' });
}

/** Why this machine cannot run the test, or undefined when it can. */
function unavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root (ip netns, nft)';
  for (const tool of ['ip', 'nft']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  const probe = `pkprobe${suffix}`;
  const r = spawnSync('ip', ['netns', 'add', probe]);
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.toString().trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

interface Envelope {
  routing: { event_type: string; event_time: number; investigation_id?: string };
  event: Record<string, unknown>;
}

interface Answered {
  state: string;
  error: number;
  answer: Envelope;
  investigationId: string;
}

const reason = unavailable();
if (reason && process.env.CI === 'true') throw new Error(`test/isolation.test.ts cannot run here (${reason}); CI must provide root, iproute2 and nftables`);
if (reason) console.warn(`skipping network isolation tests: ${reason}`);

/** Whether a TCP connection from inside the namespace to the peer succeeds within a second. */
function peerReachable(port: number): boolean {
  const script = `const s=require('net').connect(${port},'${PEER_IP}');s.setTimeout(1000);s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1));`;
  return spawnSync('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { timeout: 5000 }).status === 0;
}

/** Whether, inside the namespace, a TCP server on 127.0.0.1 answers a client there within a second. */
function loopbackAnswers(): boolean {
  const script = `const net=require('net');const srv=net.createServer((c)=>c.end('lo\\n'));srv.listen(0,'127.0.0.1',()=>{`
    + `const s=net.connect(srv.address().port,'127.0.0.1');s.setTimeout(1000);s.on('data',()=>process.exit(0));s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1));});`;
  return spawnSync('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { timeout: 5000 }).status === 0;
}

describe.skipIf(reason !== undefined)('network isolation with nftables in a network namespace', () => {
  let server: ServerProcess;
  let api: ReturnType<typeof apiClient>;
  let peer: net.Server;
  let peerPort = 0;
  let stateDir = '';
  let sensor: ManagedProcess | null = null;
  let sid = '';

  beforeAll(async () => {
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS]);
    sh('ip', ['link', 'set', VETH_NS, 'netns', NS]);
    sh('ip', ['addr', 'add', `${CLOUD_IP}/24`, 'dev', VETH_HOST]);
    sh('ip', ['addr', 'add', `${PEER_IP}/24`, 'dev', VETH_HOST]);
    sh('ip', ['link', 'set', VETH_HOST, 'up']);
    sh('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${SENSOR_IP}/24`, 'dev', VETH_NS]);
    sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, 'up']);
    sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    peer = net.createServer((socket) => socket.end('peer\n'));
    peerPort = await freePort();
    await new Promise<void>((resolve) => peer.listen(peerPort, PEER_IP, resolve));
    server = await startServerProcess({ args: ['--host', CLOUD_IP] });
    api = apiClient(server.url, server.credentials.api_key);
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-iso-'));
  });

  afterAll(async () => {
    sensor?.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    peer?.close();
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['link', 'del', VETH_HOST]);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
  });

  /** `picket sensor` inside the namespace. */
  function startSensor(): ManagedProcess {
    const proc = spawn('ip', ['netns', 'exec', NS, process.execPath, CLI, 'sensor', '--url', server.url, '--key', server.credentials.installation_key,
      '--state-dir', stateDir, '--hostname', 'isolated-host', '--log-level', 'debug', '--reconnect-base', '0.2', '--reconnect-cap', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    return new ManagedProcess(proc);
  }

  async function online(): Promise<boolean> {
    return (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online === true;
  }

  let tasked = 0;
  async function taskAndWait(command: string): Promise<Answered> {
    const investigationId = `iso-${command}-${++tasked}`;
    const res = await api<{ tasks: Array<{ task_id: string }> }>('POST', `/v1/${sid}`, { tasks: [command], investigation_id: investigationId });
    expect(res.status).toBe(200);
    return { ...(await answerOf(res.body.tasks[0]!.task_id, command)), investigationId };
  }

  async function answerOf(taskId: string, what: string): Promise<Omit<Answered, 'investigationId'>> {
    return waitFor(async () => {
      const t = (await api<Omit<Answered, 'investigationId'>>('GET', `/v1/tasks/${taskId}`)).body;
      return t.state === 'answered' ? t : undefined;
    }, { timeoutMs: 20_000, message: `answer to ${what}` });
  }

  async function timeline(eventType?: string): Promise<Envelope[]> {
    const type = eventType ? `&event_type=${eventType}` : '';
    return (await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&limit=10000${type}`)).body.events;
  }

  /** CLOUD_NOTIFICATION first, then the result, both stored with the task's investigation id. */
  async function expectNotifiedThenAnswered(answered: Answered, resultType: string): Promise<void> {
    const events = (await timeline()).filter((e) => e.routing.investigation_id === answered.investigationId);
    expect(events.map((e) => e.routing.event_type)).toEqual(['CLOUD_NOTIFICATION', resultType]);
    expect(events[0]!.event).toMatchObject({ NOTIFICATION_ID: resultType === 'SEGREGATE_NETWORK' ? 'segregate_network' : 'rejoin_network', NOTIFICATION: { INVESTIGATION_ID: answered.investigationId } });
    expect(events[0]!.event.ERROR).toBeUndefined();
    expect(events[1]!.event.ERROR).toBe(0);
    expect(answered.answer.routing).toMatchObject({ event_type: resultType, investigation_id: answered.investigationId });
  }

  async function lastConnected(): Promise<Record<string, unknown>> {
    const res = await api<{ events: Array<{ event: Record<string, unknown> }> }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&event_type=CONNECTED&is_forward=false&limit=1`);
    return res.body.events[0]!.event;
  }

  const nftTables = (): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables']).toString();
  const nft = (...args: string[]): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', ...args]).toString();
  /** The host's own firewall table, there before the sensor: isolation must neither touch nor remove it. */
  const hostTable = (): string => nft('list', 'table', 'inet', 'hostfw');

  it('cuts the host off except the cloud, and lets it back', async () => {
    sensor = startSensor();
    sid = await waitFor(() => (existsSync(path.join(stateDir, 'identity.json')) ? (JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as { sid: string }).sid : undefined), { message: 'enrolled' });
    await waitFor(online, { message: 'online' });
    expect((await lastConnected()).IS_SEGREGATED).toBe(0);
    expect(peerReachable(peerPort)).toBe(true);
    expect(loopbackAnswers()).toBe(true);
    nft('add', 'table', 'inet', 'hostfw');
    nft('add', 'chain inet hostfw input { type filter hook input priority 0; policy accept; }');
    const hostRules = hostTable();
    expect(hostRules).toMatch(/chain input/);

    const sessionsBefore = { connected: (await timeline('CONNECTED')).length, disconnected: (await timeline('DISCONNECTED')).length };
    const segregated = await taskAndWait('segregate_network');
    expect(segregated.error).toBe(0);
    await expectNotifiedThenAnswered(segregated, 'SEGREGATE_NETWORK');
    expect(peerReachable(peerPort)).toBe(false);
    // Loopback is let through while isolated.
    expect(loopbackAnswers()).toBe(true);
    // The cloud connection stays up: the sensor is online and answers the next task over the same session
    // (no DISCONNECTED, no new CONNECTED in between).
    expect(await online()).toBe(true);
    expect((await taskAndWait('selftest')).error).toBe(0);
    expect({ connected: (await timeline('CONNECTED')).length, disconnected: (await timeline('DISCONNECTED')).length }).toEqual(sessionsBefore);
    // Our rules are in our own table, and only there.
    expect(nftTables()).toMatch(/table inet picket_isolation/);
    expect(hostTable()).toBe(hostRules);

    // A restart while isolated comes back isolated, and says so.
    sensor.kill('SIGTERM');
    await sensor.exited;
    await waitFor(async () => !(await online()), { message: 'offline after the stop' });
    sensor = startSensor();
    await waitFor(online, { timeoutMs: 20_000, message: 'back online while isolated' });
    await waitFor(async () => (await lastConnected()).IS_SEGREGATED === 1, { message: 'CONNECTED.IS_SEGREGATED 1' });
    expect(peerReachable(peerPort)).toBe(false);

    const rejoined = await taskAndWait('rejoin_network');
    expect(rejoined.error).toBe(0);
    await expectNotifiedThenAnswered(rejoined, 'REJOIN_NETWORK');
    expect(peerReachable(peerPort)).toBe(true);
    expect(nftTables()).not.toMatch(/picket_isolation/);
    // The host's own table outlived segregate, restart and rejoin, unchanged.
    expect(nftTables()).toMatch(/^table inet hostfw$/m);
    expect(hostTable()).toBe(hostRules);
    expect(loopbackAnswers()).toBe(true);
  }, 90_000);

  it('the persistent flag isolates the host again after a restart that lost the rules (a reboot)', async () => {
    expect(sensor?.running && (await online())).toBe(true);
    const set = await api<{ should_isolate: boolean; task_id: string }>('POST', `/v1/${sid}/isolation`);
    expect(set.body.should_isolate).toBe(true);
    expect((await answerOf(set.body.task_id, 'the flag\'s segregate_network')).error).toBe(0);
    expect(peerReachable(peerPort)).toBe(false);

    // Stopped, and the kernel forgets the rules while it is down, as a reboot would.
    sensor!.kill('SIGTERM');
    await sensor!.exited;
    await waitFor(async () => !(await online()), { message: 'offline after the stop' });
    execFileSync('ip', ['netns', 'exec', NS, 'nft', 'delete', 'table', 'inet', 'picket_isolation']);
    expect(peerReachable(peerPort)).toBe(true);
    const tasksBefore = new Set((await api<{ tasks: Array<{ task_id: string }> }>('GET', `/v1/${sid}/tasks`)).body.tasks.map((x) => x.task_id));

    sensor = startSensor();
    await waitFor(online, { timeoutMs: 20_000, message: 'back online after the "reboot"' });
    // It says truthfully that it came back without isolation; the cloud re-applies the flag.
    await waitFor(async () => (await lastConnected()).IS_SEGREGATED === 0, { message: 'CONNECTED.IS_SEGREGATED 0 after the rules were lost' });
    const reapplied = await waitFor(async () => (await api<{ tasks: Array<{ task_id: string; command: string; investigation_id: string }> }>('GET', `/v1/${sid}/tasks`)).body.tasks
      .find((x) => !tasksBefore.has(x.task_id) && x.command === 'segregate_network' && x.investigation_id === '__isolation'), { message: 'the flag re-applied on the new session' });
    expect((await answerOf(reapplied.task_id, 'the re-applied segregate_network')).error).toBe(0);
    expect(peerReachable(peerPort)).toBe(false);
    expect(nftTables()).toMatch(/table inet picket_isolation/);
    expect((await api<{ should_isolate: boolean; is_isolated: boolean }>('GET', `/v1/${sid}/isolation`)).body).toMatchObject({ should_isolate: true, is_isolated: true });

    const lifted = await api<{ should_isolate: boolean; task_id: string }>('DELETE', `/v1/${sid}/isolation`);
    expect(lifted.body.should_isolate).toBe(false);
    expect((await answerOf(lifted.body.task_id, 'the flag\'s rejoin_network')).error).toBe(0);
    expect(peerReachable(peerPort)).toBe(true);
  }, 90_000);
});
