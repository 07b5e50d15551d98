// Real network isolation (nftables) of a real sensor process inside a Linux network namespace created by
// the test: a peer address answers before segregate_network, not after (while the cloud connection and
// the sensor stay up), again after rejoin_network; a sensor restarted while isolated comes back isolated.
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

const reason = unavailable();
if (reason && process.env.CI === 'true') throw new Error(`test/isolation.test.ts cannot run here (${reason}); CI must provide root, iproute2 and nftables`);
if (reason) console.warn(`skipping network isolation tests: ${reason}`);

/** Whether a TCP connection from inside the namespace to the peer succeeds within a second. */
function peerReachable(port: number): boolean {
  const script = `const s=require('net').connect(${port},'${PEER_IP}');s.setTimeout(1000);s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1));`;
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

  async function taskAndWait(command: string): Promise<{ error: number; answer: { routing: { event_type: string }; event: Record<string, unknown> } }> {
    const res = await api<{ tasks: Array<{ task_id: string }> }>('POST', `/v1/${sid}`, { tasks: [command], investigation_id: `iso-${command}` });
    expect(res.status).toBe(200);
    const id = res.body.tasks[0]!.task_id;
    return waitFor(async () => {
      const t = (await api<{ state: string; error: number; answer: { routing: { event_type: string }; event: Record<string, unknown> } }>('GET', `/v1/tasks/${id}`)).body;
      return t.state === 'answered' ? t : undefined;
    }, { timeoutMs: 20_000, message: `answer to ${command}` });
  }

  async function lastConnected(): Promise<Record<string, unknown>> {
    const res = await api<{ events: Array<{ event: Record<string, unknown> }> }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&event_type=CONNECTED&is_forward=false&limit=1`);
    return res.body.events[0]!.event;
  }

  it('cuts the host off except the cloud, and lets it back', async () => {
    sensor = startSensor();
    sid = await waitFor(() => (existsSync(path.join(stateDir, 'identity.json')) ? (JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as { sid: string }).sid : undefined), { message: 'enrolled' });
    await waitFor(online, { message: 'online' });
    expect((await lastConnected()).IS_SEGREGATED).toBe(0);
    expect(peerReachable(peerPort)).toBe(true);

    const segregated = await taskAndWait('segregate_network');
    expect(segregated.answer.routing.event_type).toBe('SEGREGATE_NETWORK');
    expect(segregated.error).toBe(0);
    expect(peerReachable(peerPort)).toBe(false);
    // The cloud connection stays up: the sensor is online and still answers.
    expect(await online()).toBe(true);
    expect((await taskAndWait('selftest')).error).toBe(0);
    // Our rules are in our own table, and only there.
    const tables = execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables']).toString();
    expect(tables).toMatch(/table inet picket_isolation/);

    // A restart while isolated comes back isolated, and says so.
    sensor.kill('SIGTERM');
    await sensor.exited;
    await waitFor(async () => !(await online()), { message: 'offline after the stop' });
    sensor = startSensor();
    await waitFor(online, { timeoutMs: 20_000, message: 'back online while isolated' });
    await waitFor(async () => (await lastConnected()).IS_SEGREGATED === 1, { message: 'CONNECTED.IS_SEGREGATED 1' });
    expect(peerReachable(peerPort)).toBe(false);

    const rejoined = await taskAndWait('rejoin_network');
    expect(rejoined.answer.routing.event_type).toBe('REJOIN_NETWORK');
    expect(rejoined.error).toBe(0);
    expect(peerReachable(peerPort)).toBe(true);
    expect(execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'tables']).toString()).not.toMatch(/picket_isolation/);
  }, 90_000);
});
