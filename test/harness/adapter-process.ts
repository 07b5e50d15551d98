// `picket adapter` as a real process from the build (dist/), as a user runs it, with its stdin at hand.
import { spawn } from 'node:child_process';
import { CLI, ManagedProcess, assertBuilt } from './processes.js';

export interface AdapterProcessOptions {
  url: string;
  oid: string;
  key: string;
  stateDir: string;
  /** Sources and anything else (`--file x`, `--stdin`, …). */
  args: string[];
  env?: Record<string, string>;
}

export function startAdapterProcess(options: AdapterProcessOptions): ManagedProcess {
  assertBuilt();
  const args = [CLI, 'adapter', '--url', options.url, '--oid', options.oid, '--state-dir', options.stateDir, '--log-level', 'debug', '--stats-interval', '0', '--reconnect-base', '0.1', '--reconnect-cap', '1', ...options.args];
  const proc = spawn(process.execPath, args, {
    // The key through the environment, as docs/adapter.md recommends.
    env: { ...process.env, PICKET_INSTALLATION_KEY: options.key, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new ManagedProcess(proc);
}

/** Appends numbered lines to a file in small bursts, as a busy application does; resolves when done. */
export async function writeLinesSlowly(append: (text: string) => void, from: number, to: number, options: { perBurst?: number; pauseMs?: number; prefix?: string } = {}): Promise<void> {
  const perBurst = options.perBurst ?? 50;
  for (let i = from; i <= to; i += perBurst) {
    let chunk = '';
    for (let n = i; n < Math.min(to + 1, i + perBurst); n++) chunk += `${options.prefix ?? 'line'} ${n}\n`;
    append(chunk);
    // Paced, not synchronised with anything: the writer's own rhythm.
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 2));
  }
}
