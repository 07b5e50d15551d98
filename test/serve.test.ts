// `picket serve` as a user first runs it (README quick start): started in an empty directory without
// --data, it keeps its data in ./data and prints where the API listens, an admin API key and an
// installation key, the same ones it saved in data/credentials.json (mode 0600) for the CLI.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootstrapCredentials } from '../src/services/bootstrap.js';
import { apiClient } from './harness/server.js';
import { assertBuilt, CLI, freePort, ManagedProcess } from './harness/processes.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { waitFor } from './harness/wait.js';

/** The environment of the tests without any PICKET_* setting, so that only the defaults apply. */
function envWithoutPicketSettings(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PICKET_') && v !== undefined) env[k] = v;
  return env;
}

/** `picket serve` with nothing but a port, in `cwd`; resolves once the banner is printed. */
async function serveIn(cwd: string, port: number): Promise<ManagedProcess> {
  assertBuilt();
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--sqlite-sync', 'normal'], { cwd, env: envWithoutPicketSettings(), stdio: ['ignore', 'pipe', 'pipe'] });
  const server = new ManagedProcess(proc);
  await waitFor(() => server.stderr.some((l) => l.startsWith('List sensors:')) || !server.running, { timeoutMs: 20_000, message: 'the start banner' });
  if (!server.running) throw new Error(`picket serve exited during start\n${server.output()}`);
  return server;
}

/** The value printed after "<label>:" in the banner. */
function bannerValue(server: ManagedProcess, label: string): string | undefined {
  const line = server.stderr.find((l) => l.trimStart().startsWith(`${label}:`));
  return line?.trimStart().slice(label.length + 1).trim().split(/\s+/)[0];
}

/** The built CLI in `cwd`, with no PICKET_* settings (runCli can only add variables, not remove them). */
function cliIn(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd, env: envWithoutPicketSettings(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function stop(server: ManagedProcess): Promise<void> {
  server.kill('SIGTERM');
  const exit = await server.exited;
  expect(exit.code, server.output()).toBe(0);
}

describe('picket serve on first start (no --data, an empty working directory)', () => {
  let cwd: string;
  let port: number;
  let server: ManagedProcess;
  let credentials: BootstrapCredentials;

  beforeAll(async () => {
    cwd = mkdtempSync(path.join(os.tmpdir(), 'picket-serve-'));
    port = await freePort();
    server = await serveIn(cwd, port);
    const file = path.join(cwd, 'data', 'credentials.json');
    if (existsSync(file)) credentials = JSON.parse(readFileSync(file, 'utf8')) as BootstrapCredentials;
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    await server?.exited;
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('creates ./data with the embedded store and credentials.json in the working directory', () => {
    const dataDir = path.join(cwd, 'data');
    expect(statSync(dataDir).isDirectory()).toBe(true);
    expect(existsSync(path.join(dataDir, 'picket.db'))).toBe(true);
    expect(existsSync(path.join(dataDir, 'credentials.json'))).toBe(true);
    expect(credentials.oid).toBeTruthy();
    expect(server.stderr.join('\n')).toContain(path.join(dataDir, 'credentials.json'));
  });

  it('credentials.json is readable and writable by its owner only (mode 0600)', () => {
    expect(statSync(path.join(cwd, 'data', 'credentials.json')).mode & 0o777).toBe(0o600);
  });

  it('prints the API URL, an admin API key and an installation key, the ones saved in credentials.json', () => {
    const url = `http://127.0.0.1:${port}`;
    expect(bannerValue(server, 'API')).toBe(url);
    expect(bannerValue(server, 'Sensor gateway')).toBe(`ws://127.0.0.1:${port}/sensor`);
    expect(bannerValue(server, 'Admin API key')).toBe(credentials.api_key);
    expect(bannerValue(server, 'Installation key')).toBe(credentials.installation_key);
    expect(server.stderr.join('\n')).toContain(`oid ${credentials.oid}`);
    expect(credentials.api_key).toMatch(/^[0-9a-f-]{36}\.\S{20,}$/);
    expect(credentials.installation_key).toMatch(/^[0-9a-f-]{36}\.\S{20,}$/);
  });

  it('the printed keys work: the API key reads its organization, the installation key enrolls a sensor', async () => {
    const api = apiClient(bannerValue(server, 'API')!, bannerValue(server, 'Admin API key')!);
    const who = await api<{ oid: string; role: string }>('GET', '/v1/whoami');
    expect(who.status).toBe(200);
    expect(who.body.oid).toBe(credentials.oid);
    const sensor = new ProtocolClient(bannerValue(server, 'API')!);
    await sensor.hello({ installation_key: bannerValue(server, 'Installation key')! });
    const welcome = await sensor.welcome();
    expect(welcome.oid).toBe(credentials.oid);
    sensor.close();
    await sensor.closed;
  });

  it('the CLI started in the same directory finds the cloud through ./data/credentials.json', async () => {
    const r = await cliIn(cwd, ['org', 'info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { oid: string; url: { api: string } })).toMatchObject({ oid: credentials.oid, url: { api: `http://127.0.0.1:${port}` } });
  });

  it('a second start on the same directory prints no new keys and keeps credentials.json as it was', async () => {
    await stop(server);
    const before = readFileSync(path.join(cwd, 'data', 'credentials.json'), 'utf8');
    server = await serveIn(cwd, port);
    expect(server.stderr.join('\n')).not.toContain('First start');
    expect(bannerValue(server, 'Admin API key')).toBeUndefined();
    expect(bannerValue(server, 'Credentials')).toBe(path.join(cwd, 'data', 'credentials.json'));
    expect(readFileSync(path.join(cwd, 'data', 'credentials.json'), 'utf8')).toBe(before);
    expect(statSync(path.join(cwd, 'data', 'credentials.json')).mode & 0o777).toBe(0o600);
    const who = await apiClient(`http://127.0.0.1:${port}`, credentials.api_key)('GET', '/v1/whoami');
    expect(who.status).toBe(200);
  });
});
