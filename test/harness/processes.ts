// Real `picket` processes for end-to-end tests: the server and reference sensors, run from the build
// (dist/), exactly as a user runs them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BootstrapCredentials } from '../../src/services/bootstrap.js';
import { waitFor } from './wait.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
}

export class ManagedProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly proc: ChildProcess) {
    const collect = (stream: NodeJS.ReadableStream | null, into: string[]): void => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          into.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    };
    collect(proc.stdout, this.stdout);
    collect(proc.stderr, this.stderr);
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.proc.kill(signal);
  }

  /** JSON log lines (pino) from stdout or stderr. */
  logs(from: 'stdout' | 'stderr' = 'stdout'): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of from === 'stdout' ? this.stdout : this.stderr) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
    return out;
  }

  output(): string {
    return `--- stdout ---\n${this.stdout.join('\n')}\n--- stderr ---\n${this.stderr.join('\n')}`;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess extends ManagedProcess {
  url: string;
  port: number;
  dataDir: string;
  credentials: BootstrapCredentials;
}

export async function startServerProcess(options: { dataDir?: string; port?: number; env?: Record<string, string>; args?: string[] } = {}): Promise<ServerProcess> {
  assertBuilt();
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'picket-e2e-'));
  const port = options.port ?? (await freePort());
  // PICKET_TEST_STORE=postgres: the server keeps its data in a schema named after its data directory (see server.ts).
  const storeArgs = process.env.PICKET_TEST_STORE === 'postgres' && !(options.args ?? []).includes('--store') ? ['--store', await postgresStoreFor(dataDir)] : [];
  const proc = spawn(process.execPath, [CLI, 'serve', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1', ...storeArgs, ...(options.args ?? [])], {
    env: { ...process.env, PICKET_PING_INTERVAL: '0.5', PICKET_LIVENESS_TIMEOUT: '3', PICKET_ALIVE_FLUSH_MS: '200', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const managed = new ManagedProcess(proc) as ServerProcess;
  await waitFor(() => managed.logs().some((l) => l.msg === 'picket ready') || !managed.running, { timeoutMs: 20_000, message: 'server to be ready' });
  if (!managed.running) throw new Error(`server exited during start\n${managed.output()}`);
  const ready = managed.logs().find((l) => l.msg === 'picket ready')!;
  managed.url = String(ready.url);
  managed.port = port;
  managed.dataDir = dataDir;
  managed.credentials = JSON.parse(readFileSync(path.join(dataDir, 'credentials.json'), 'utf8')) as BootstrapCredentials;
  return managed;
}

async function postgresStoreFor(dataDir: string): Promise<string> {
  const { storeUrl, schemaForDataDir } = await import('./postgres.js');
  return storeUrl(schemaForDataDir(dataDir));
}

export function startSensorProcess(options: { url?: string; key?: string; stateDir: string; hostname?: string; args?: string[]; env?: Record<string, string> }): ManagedProcess {
  assertBuilt();
  const args = [CLI, 'sensor', '--state-dir', options.stateDir, '--log-level', 'debug'];
  if (options.url) args.push('--url', options.url);
  if (options.key) args.push('--key', options.key);
  if (options.hostname) args.push('--hostname', options.hostname);
  args.push(...(options.args ?? []));
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new ManagedProcess(proc);
}

export function runCli(args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...options.env }, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(options.input ?? '');
  });
}
