// Child processes a benchmark drives: a Picket server on a fresh data directory, and `picket simulate`
// runs whose JSON summary is the measurement.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimulationSummary } from '../../src/simulator/fleet-simulator.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface PicketServer {
  url: string;
  dataDir: string;
  oid: string;
  apiKey: string;
  installationKey: string;
  proc: ChildProcess;
  /** Parses /metrics into name{labels} → value. */
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export async function startPicket(env: Record<string, string> = {}, dataDir?: string): Promise<PicketServer> {
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'picket-bench-'));
  const port = await freePort();
  // PICKET_BENCH_SERVER_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.PICKET_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--data', dir, '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, PICKET_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  // PICKET_BENCH_SERVER_STDOUT: a file the server's stdout is appended to (e.g. with --trace-gc in the node args).
  const stdoutFile = process.env.PICKET_BENCH_SERVER_STDOUT;
  if (stdoutFile) {
    const sink = createWriteStream(stdoutFile, { flags: 'a' });
    // A file that cannot be written costs the log, not the benchmark: said once, and the output drained.
    sink.on('error', (err) => {
      process.stderr.write(`[bench] PICKET_BENCH_SERVER_STDOUT: cannot write ${stdoutFile}: ${err.message}; the server's output is dropped\n`);
      proc.stdout!.unpipe(sink);
      proc.stdout!.resume();
    });
    proc.stdout!.pipe(sink);
  } else {
    proc.stdout!.resume();
  }
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`picket serve exited: ${err}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`picket serve not ready after 30 s: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const creds = JSON.parse(readFileSync(path.join(dir, 'credentials.json'), 'utf8')) as { oid: string; api_key: string; installation_key: string };
  return {
    url, dataDir: dir, oid: creds.oid, apiKey: creds.api_key, installationKey: creds.installation_key, proc,
    async metrics() {
      const text = await (await fetch(`${url}/metrics`)).text();
      const out = new Map<string, number>();
      for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const i = line.lastIndexOf(' ');
        out.set(line.slice(0, i), Number(line.slice(i + 1)));
      }
      return out;
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `picket simulate --json` with the given flags and returns its summary. */
export function simulate(server: PicketServer, flags: string[], onProgress?: (line: string) => void): Promise<SimulationSummary> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, 'simulate', '--url', server.url, '--key', server.installationKey, '--json', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      for (const line of c.split('\n')) if (line.trim()) onProgress?.(line.trim());
    });
    proc.on('exit', () => {
      try {
        resolve(JSON.parse(out) as SimulationSummary);
      } catch {
        reject(new Error(`picket simulate failed: ${err.slice(-2000)}`));
      }
    });
  });
}
