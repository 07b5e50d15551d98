// One Picket process per data directory: a second server on a directory in use is refused with a message
// naming the holder, before it touches the store; the lock goes with its holder however that ends (a
// clean stop, a start that fails, or a SIGKILL: no stale lock to clean up by hand).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirInUseError, DataDirLock } from '../src/data-dir-lock.js';
import { startTestServer, type TestServer } from './harness/server.js';
import { runCli, startServerProcess, type ServerProcess } from './harness/processes.js';

const dirs: string[] = [];
const servers: TestServer[] = [];
const processes: ServerProcess[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-lock-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const p of processes.splice(0)) {
    p.kill('SIGKILL');
    await p.exited;
  }
  for (const s of servers.splice(0)) await s.close({ keepData: true });
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the data directory lock', () => {
  it('refuses a second holder in the same process and gives the directory up on release', () => {
    const dir = tempDir();
    const first = DataDirLock.acquire(dir, Date.UTC(2026, 11, 7, 12));
    let refused: unknown;
    try {
      DataDirLock.acquire(dir);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(DataDirInUseError);
    expect((refused as DataDirInUseError).holder).toEqual({ pid: process.pid, hostname: os.hostname(), since: Date.UTC(2026, 11, 7, 12) });
    expect((refused as Error).message).toContain(`in use by another Picket process (pid ${process.pid} on ${os.hostname()}, since 2026-12-07T12:00:00.000Z)`);
    first.release();
    first.release(); // idempotent
    const second = DataDirLock.acquire(dir);
    second.release();
  });

  it('refuses a second server on a directory in use without touching its store, and starts it once the first has stopped', async () => {
    const dir = tempDir();
    const first = await startTestServer({ dataDir: dir });
    servers.push(first);
    await expect(startTestServer({ dataDir: dir })).rejects.toThrow(DataDirInUseError);
    // The first is unharmed: it still answers and still holds the directory.
    const res = await fetch(`${first.url}/v1/orgs/${first.oid}`, { headers: { authorization: `Bearer ${first.apiKey}` } });
    expect(res.status).toBe(200);
    await first.close({ keepData: true });
    servers.splice(servers.indexOf(first), 1);
    const second = await startTestServer({ dataDir: dir });
    servers.push(second);
    expect(second.oid).toBe(first.oid);
  });

  it('gives the directory back when the node cannot have its port, and says which port and what to do', async () => {
    const first = await startTestServer();
    servers.push(first);
    const dir = tempDir();
    await expect(startTestServer({ dataDir: dir, port: first.port })).rejects.toThrow(
      `cannot listen on 127.0.0.1:${first.port}: the port is in use (another Picket, or another program); stop it, or give this node another port (--port / PICKET_PORT)`,
    );
    // Nothing of the failed start holds the directory, and it created no organization whose admin key
    // nobody was shown: the next start on it, on another port, is the first start.
    expect(existsSync(path.join(dir, 'credentials.json'))).toBe(false);
    const second = await startTestServer({ dataDir: dir });
    servers.push(second);
    expect(second.port).not.toBe(first.port);
    expect(second.server.bootstrap).toMatchObject({ oid: second.oid, api_key: second.apiKey, url: second.url });
  });

  it('makes `picket serve` on a directory in use exit with the holder named; a SIGKILLed holder leaves no stale lock', async () => {
    const dir = tempDir();
    const first = await startServerProcess({ dataDir: dir });
    processes.push(first);
    const refused = await runCli(['serve', '--data', dir, '--port', '0', '--host', '127.0.0.1']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`the data directory ${dir} is in use by another Picket process (pid ${first.proc.pid}`);
    first.kill('SIGKILL');
    await first.exited;
    const second = await startServerProcess({ dataDir: dir });
    processes.push(second);
    expect(second.credentials.oid).toBe(first.credentials.oid);
  });
});
