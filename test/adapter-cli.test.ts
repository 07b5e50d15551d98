// `picket adapter` as a process (from dist/) against a real USP server written from docs/usp.md
// (harness/adapter-usp-server.ts): a SIGKILL mid-stream loses and duplicates nothing, SIGTERM drains,
// stdin ends cleanly, a refused key exits 2 without retrying, and bad options exit 1 saying why.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UspTestServer } from './harness/adapter-usp-server.js';
import { startAdapterProcess, writeLinesSlowly } from './harness/adapter-process.js';
import { runCli, type ManagedProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

const OID = '8cbe27f4-bfa1-4afb-ba19-138cd51389cd';
const KEY = 'a1b2c3d4-0000-4000-8000-000000000001.secret';

describe('picket adapter (process) against a USP server', () => {
  let dir: string;
  const procs: ManagedProcess[] = [];
  const servers: UspTestServer[] = [];

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-cli-'));
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.kill('SIGKILL');
      await p.exited;
    }
    for (const s of servers.splice(0)) await s.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function server(options: Parameters<typeof UspTestServer.start>[0] = {}): Promise<UspTestServer> {
    const s = await UspTestServer.start(options);
    servers.push(s);
    return s;
  }

  function adapter(s: UspTestServer, stateDir: string, args: string[]): ManagedProcess {
    const p = startAdapterProcess({ url: s.url, oid: OID, key: KEY, stateDir, args });
    procs.push(p);
    return p;
  }

  it('killed with SIGKILL mid-stream and restarted on the same state directory, delivers every line once', async () => {
    const s = await server({ window: 64 });
    const file = path.join(dir, 'kill.log');
    const state = path.join(dir, 'kill-state');
    writeFileSync(file, '');
    const TOTAL = 6000;
    const first = adapter(s, state, ['--file', file, '--hostname', 'kill-test']);
    await waitFor(() => first.logs('stderr').some((l) => l.msg === 'reading file'), { message: 'the adapter follows the file' });
    const writing = writeLinesSlowly((t) => appendFileSync(file, t), 1, TOTAL, { perBurst: 40 });
    await waitFor(() => s.stored.size >= 1500, { timeoutMs: 20_000, message: 'a good part delivered' });
    // Stored but not yet acknowledged when the adapter dies: it must send them again, with the same x.
    s.holdAcks = true;
    const held = s.received.length;
    await waitFor(() => s.received.length >= held + 20, { message: 'messages in flight, unacknowledged' });
    first.kill('SIGKILL');
    await first.exited;
    const storedAtKill = s.stored.size;
    const highestBeforeKill = Math.max(...s.received.map((m) => m.x));
    s.holdAcks = false;

    const second = adapter(s, state, ['--file', file, '--hostname', 'kill-test']);
    await writing;
    await waitFor(() => s.stored.size >= TOTAL, { timeoutMs: 30_000, message: `all ${TOTAL} lines stored (output: ${second.output().slice(-2000)})` });
    await waitFor(() => second.logs('stderr').some((l) => l.msg === 'connected to the cloud'), { message: 'second connected' });

    const texts = s.storedTexts();
    expect(texts).toHaveLength(TOTAL);
    expect(new Set(texts).size).toBe(TOTAL);
    expect(texts).toEqual(Array.from({ length: TOTAL }, (_, i) => `line ${i + 1}`));
    // One sequence space across the restart; what was in flight at the kill was sent again with its x.
    expect(new Set(s.headers.map((h) => h.instance_id)).size).toBe(1);
    expect(storedAtKill).toBeLessThan(TOTAL);
    const secondXs = s.received.filter((m) => m.connection === 2).map((m) => m.x);
    expect(secondXs).toEqual([...secondXs].sort((a, b) => a - b));
    const resent = secondXs.filter((x) => x <= highestBeforeKill);
    expect(resent.length).toBeGreaterThanOrEqual(20);
    // Resent with their original text: the store kept the first copy, and it is the same line.
    for (const x of resent) {
      const copies = s.received.filter((m) => m.x === x).map((m) => m.fields.t);
      expect(new Set(copies).size).toBe(1);
    }
  });

  it('on SIGTERM, waits until the cloud has acknowledged what it read, then exits 0', async () => {
    const s = await server();
    const file = path.join(dir, 'term.log');
    writeFileSync(file, Array.from({ length: 200 }, (_, i) => `term ${i + 1}`).join('\n') + '\n');
    const p = adapter(s, path.join(dir, 'term-state'), ['--file', file]);
    await waitFor(() => s.stored.size === 200, { message: 'lines delivered' });
    p.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code).toBe(0);
    expect(p.logs('stderr').some((l) => l.msg === 'adapter stopped; everything delivered')).toBe(true);
    expect(s.closes.at(-1)!.code).toBe(1000);
  });

  it('ships stdin as JSON lines and exits 0 once it ended and everything is acknowledged', async () => {
    const s = await server();
    const p = adapter(s, path.join(dir, 'stdin-state'), ['--stdin', '--event-type-path', 'type']);
    const input = [...Array.from({ length: 100 }, (_, i) => JSON.stringify({ type: 'login', n: i })), 'plain text', '', '{"type":"last"}'].join('\n');
    p.proc.stdin!.end(input);
    const { code } = await p.exited;
    expect(code).toBe(0);
    expect(s.stored.size).toBe(102);
    const stored = [...s.stored.values()].sort((a, b) => a.x - b.x);
    expect(stored[0]!.fields.j).toEqual({ type: 'login', n: 0 });
    expect(stored[100]!.fields).toMatchObject({ t: 'plain text' });
    expect(stored[101]!.fields.j).toEqual({ type: 'last' });
    expect(s.headers[0]).toMatchObject({ platform: 'json', mapping: { event_type_path: 'type' } });
  });

  it('exits 2 without retrying when the cloud refuses the key', async () => {
    const s = await server({ refuseHeader: () => ({ code: 4003, err: 'invalid installation key' }) });
    const p = adapter(s, path.join(dir, 'refused-state'), ['--syslog-udp', '127.0.0.1:0']);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(s.headers).toHaveLength(1);
    expect(p.logs('stderr').some((l) => l.msg === 'the cloud refused the adapter; not retrying' && String(l.err).includes('invalid installation key'))).toBe(true);
  });

  it('refuses bad options with exit code 1 and a clear message', async () => {
    const base = ['adapter', '--url', 'http://127.0.0.1:1', '--oid', OID, '--key', KEY, '--state-dir', path.join(dir, 'bad')];
    const cases: Array<[string[], RegExp]> = [
      [[], /nothing to ship/],
      [['--file', 'x', '--event-type', 'CONNECTED'], /produced by the cloud/],
      [['--file', 'x', '--event-type', 'bad type!'], /--event-type must be/],
      [['--file', 'x', '--event-type', 'a', '--event-type-path', 'b'], /exclude each other/],
      [['--file', 'x', '--parsing-re', '(unclosed'], /--parsing-re/],
      [['--file', 'x', '--platform', 'amiga'], /unknown platform/],
      [['--syslog-udp', 'nope'], /invalid listen address/],
    ];
    for (const [args, message] of cases) {
      const res = await runCli([...base, ...args]);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toMatch(message);
    }
    const noOid = await runCli(['adapter', '--url', 'http://127.0.0.1:1', '--state-dir', dir, '--stdin'], { env: { PICKET_OID: '' } });
    expect(noOid.stderr).toMatch(/--oid \(or PICKET_OID\) is required/);
  });
});
