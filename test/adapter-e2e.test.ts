// `picket adapter` end to end: real adapter processes ship into a real `picket serve` over /usp, and the
// events are read back through the API. A file rotated mid-stream (rename, then copytruncate), syslog
// sent by the system's `logger` over UDP and TCP, stdin JSON lines with a mapping, and an adapter killed
// with SIGKILL and restarted: every line stored exactly once.
import { execFile } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, renameSync, rmSync, truncateSync, copyFileSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { v5 as uuidV5 } from 'uuid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAdapterProcess, writeLinesSlowly } from './harness/adapter-process.js';
import { freePort, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const run = promisify(execFile);

interface Envelope {
  routing: { event_type: string; event_time: number; hostname: string; investigation_id?: string; arch: number; plat: number };
  event: Record<string, unknown>;
}

describe('picket adapter into a real Picket server', () => {
  let server: ServerProcess;
  let dir: string;
  const adapters: ManagedProcess[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ env: { PICKET_SQLITE_SYNC: 'normal' } });
    dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-e2e-'));
  });
  afterEach(async () => {
    for (const a of adapters.splice(0)) {
      a.kill('SIGKILL');
      await a.exited;
    }
  });
  afterAll(async () => {
    server?.kill('SIGTERM');
    await server?.exited;
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  function adapter(seedKey: string, args: string[], stateDir = path.join(dir, `${seedKey}-state`)): ManagedProcess {
    const a = startAdapterProcess({ url: server.url, oid: server.credentials.oid, key: server.credentials.installation_key, stateDir, args: ['--seed-key', seedKey, '--hostname', seedKey, ...args] });
    adapters.push(a);
    return a;
  }

  /** Every event of one type on a sensor's timeline, through the API's pages. */
  async function events(seedKey: string, eventType: string): Promise<Envelope[]> {
    const api = apiClient(server.url, server.credentials.api_key);
    const sid = uuidV5(seedKey, server.credentials.oid);
    const out: Envelope[] = [];
    let cursor: string | null = null;
    do {
      const route: string = `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&event_type=${eventType}&limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const res = await api<{ events: Envelope[]; next_cursor: string | null }>('GET', route);
      if (res.status === 404) return out;
      expect(res.status).toBe(200);
      out.push(...res.body.events);
      cursor = res.body.next_cursor;
    } while (cursor);
    return out;
  }

  function texts(list: Envelope[]): string[] {
    return list.map((e) => String(e.event.text));
  }

  function expectEachOnce(got: string[], expected: string[]): void {
    const counts = new Map<string, number>();
    for (const t of got) counts.set(t, (counts.get(t) ?? 0) + 1);
    const missing = expected.filter((t) => !counts.has(t));
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([t]) => t);
    expect({ missing: missing.slice(0, 10), duplicated: duplicated.slice(0, 10), total: got.length }).toEqual({ missing: [], duplicated: [], total: expected.length });
  }

  const numbered = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `${prefix} ${from + i}`);

  it('tails a file rotated mid-stream by rename and by copytruncate: every line exactly once', async () => {
    const file = path.join(dir, 'app.log');
    writeFileSync(file, '');
    const a = adapter('e2e-rotate', ['--file', file, '--poll-interval', '50']);
    await waitFor(() => a.logs('stderr').some((l) => l.msg === 'reading file'), { message: 'the adapter follows the file' });
    // The application writes through an open descriptor; rotation renames the file under it.
    let fd = openSync(file, 'a');
    await writeLinesSlowly((t) => writeSync(fd, t), 1, 3000, { perBurst: 30 });
    renameSync(file, `${file}.1`);
    await writeLinesSlowly((t) => writeSync(fd, t), 3001, 3200, { perBurst: 30 }); // before it reopens its log
    closeSync(fd);
    fd = openSync(file, 'a');
    await writeLinesSlowly((t) => writeSync(fd, t), 3201, 6000, { perBurst: 30 });
    closeSync(fd);
    await waitFor(async () => (await events('e2e-rotate', 'log')).length >= 6000, { timeoutMs: 30_000, message: '6000 lines stored' });

    // copytruncate: the content is copied away and the file emptied in place, then writing goes on.
    copyFileSync(file, `${file}.2`);
    truncateSync(file, 0);
    await writeLinesSlowly((t) => appendFileSync(file, t), 6001, 7000, { perBurst: 30 });
    await waitFor(async () => (await events('e2e-rotate', 'log')).length >= 7000, { timeoutMs: 30_000, message: '7000 lines stored' });

    const stored = await events('e2e-rotate', 'log');
    expectEachOnce(texts(stored), numbered('line', 1, 7000));
    expect(stored[0]!.routing).toMatchObject({ hostname: 'e2e-rotate', arch: 9, plat: 0x80000000 });
  });

  it('relays syslog sent by logger over UDP (-d) and TCP (-T), each message once', async () => {
    const udp = await freePort();
    const tcp = await freePort();
    const a = adapter('e2e-syslog', ['--syslog-udp', `127.0.0.1:${udp}`, '--syslog-tcp', `127.0.0.1:${tcp}`]);
    await waitFor(() => a.logs('stderr').filter((l) => l.msg === 'listening for syslog').length === 2, { message: 'both listeners up' });
    for (let i = 1; i <= 20; i++) await run('logger', ['-n', '127.0.0.1', '-P', String(udp), '-d', '-t', 'udp-app', '-p', 'auth.warning', `udp message ${i}`]);
    await run('logger', ['-n', '127.0.0.1', '-P', String(udp), '-d', '--rfc3164', '-t', 'old-app', 'bsd message 1']);
    const child = execFile('logger', ['-n', '127.0.0.1', '-P', String(tcp), '-T', '-t', 'tcp-app']);
    child.stdin!.end(numbered('tcp line', 1, 300).join('\n') + '\n');
    await new Promise((resolve) => child.once('exit', resolve));
    for (let i = 1; i <= 5; i++) await run('logger', ['-n', '127.0.0.1', '-P', String(tcp), '-T', '--octet-count', '--sd-id', 'req@32473', '--sd-param', `n="${i}"`, '-t', 'counted', `octet message ${i}`]);

    const expected = [...numbered('udp message', 1, 20), 'bsd message 1', ...numbered('tcp line', 1, 300), ...numbered('octet message', 1, 5)];
    await waitFor(async () => (await events('e2e-syslog', 'syslog')).length >= expected.length, { timeoutMs: 20_000, message: `${expected.length} syslog messages stored` });
    const stored = await events('e2e-syslog', 'syslog');
    expectEachOnce(stored.map((e) => String(e.event.message)), expected);

    const udpOne = stored.find((e) => e.event.message === 'udp message 1')!;
    expect(udpOne.event).toMatchObject({ format: 'rfc5424', facility_name: 'auth', severity_name: 'warning', app_name: 'udp-app', hostname: os.hostname(), source_ip: '127.0.0.1' });
    // The event time is the message's own timestamp.
    expect(udpOne.routing.event_time).toBe(Date.parse(String(udpOne.event.timestamp)));
    expect(stored.find((e) => e.event.message === 'bsd message 1')!.event).toMatchObject({ format: 'rfc3164', app_name: 'old-app' });
    expect(stored.find((e) => e.event.message === 'octet message 3')!.event.structured_data).toMatchObject({ 'req@32473': { n: '3' } });
  });

  it('maps stdin JSON lines: event type, time, host and investigation id from the payload', async () => {
    const a = adapter('e2e-stdin', ['--stdin', '--event-type-path', 'kind', '--event-time-path', 'meta/ts', '--hostname-path', 'meta/host', '--investigation-id-path', 'case']);
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ kind: 'auth_login', meta: { ts: 1_700_000_000 + i, host: `web-${i % 3}` }, case: 'IR-7', n: i }));
    a.proc.stdin!.end(lines.join('\n') + '\n');
    const { code } = await a.exited;
    expect(code).toBe(0);
    const stored = await events('e2e-stdin', 'auth_login');
    expect(stored.map((e) => e.event.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(stored[4]!.routing).toMatchObject({ event_type: 'auth_login', event_time: (1_700_000_000 + 4) * 1000, hostname: 'web-1', investigation_id: 'IR-7', plat: 0x90000000 });
  });

  it('reconnects when an operator asks (re) and resends what was unacknowledged: every line once', async () => {
    const file = path.join(dir, 're.log');
    writeFileSync(file, '');
    const a = adapter('e2e-re', ['--file', file]);
    await waitFor(() => a.logs('stderr').some((l) => l.msg === 'reading file'), { message: 'the adapter follows the file' });
    const writing = writeLinesSlowly((t) => appendFileSync(file, t), 1, 5000, { perBurst: 40 });
    await waitFor(async () => (await events('e2e-re', 'log')).length >= 1000, { timeoutMs: 30_000, message: 'some lines stored' });
    const api = apiClient(server.url, server.credentials.api_key);
    const res = await api('POST', `/v1/${uuidV5('e2e-re', server.credentials.oid)}/reconnect`);
    expect(res.status).toBe(200);
    await writing;
    await waitFor(async () => (await events('e2e-re', 'log')).length >= 5000, { timeoutMs: 30_000, message: '5000 lines stored' });
    expectEachOnce(texts(await events('e2e-re', 'log')), numbered('line', 1, 5000));
    expect(a.logs('stderr').some((l) => l.msg === 'the cloud asks for a reconnect')).toBe(true);
    expect(a.logs('stderr').filter((l) => l.msg === 'connected to the cloud')).toHaveLength(2);
  });

  it('exits 2 when the cloud refuses the installation key', async () => {
    const wrongKey = `${server.credentials.installation_key.split('.')[0]}.not-the-secret`;
    const a = startAdapterProcess({ url: server.url, oid: server.credentials.oid, key: wrongKey, stateDir: path.join(dir, 'wrong-key-state'), args: ['--seed-key', 'e2e-wrong-key', '--syslog-udp', '127.0.0.1:0'] });
    adapters.push(a);
    const { code } = await a.exited;
    expect(code).toBe(2);
    const refusal = a.logs('stderr').find((l) => l.msg === 'the cloud refused the adapter; not retrying')!;
    expect(refusal.code).toBe(4003);
    expect(a.logs('stderr').filter((l) => String(l.msg).startsWith('connection to the cloud closed'))).toHaveLength(0);
  });

  it('killed with SIGKILL and restarted with the same state directory loses nothing and duplicates nothing', async () => {
    const file = path.join(dir, 'crash.log');
    const state = path.join(dir, 'crash-state');
    writeFileSync(file, '');
    const TOTAL = 8000;
    const first = adapter('e2e-crash', ['--file', file], state);
    await waitFor(() => first.logs('stderr').some((l) => l.msg === 'reading file'), { message: 'the adapter follows the file' });
    const writing = writeLinesSlowly((t) => appendFileSync(file, t), 1, TOTAL, { perBurst: 40 });
    await waitFor(async () => (await events('e2e-crash', 'log')).length >= 2000, { timeoutMs: 30_000, message: 'a quarter stored' });
    first.kill('SIGKILL');
    await first.exited;

    const second = adapter('e2e-crash', ['--file', file], state);
    await writing;
    await waitFor(async () => (await events('e2e-crash', 'log')).length >= TOTAL, { timeoutMs: 30_000, message: `${TOTAL} lines stored` });
    expectEachOnce(texts(await events('e2e-crash', 'log')), numbered('line', 1, TOTAL));
    // The restarted adapter picked up where the first stopped: it found its buffer and file position.
    const started = second.logs('stderr').find((l) => l.msg === 'adapter started')!;
    expect(started.instance_id).toBe(first.logs('stderr').find((l) => l.msg === 'adapter started')!.instance_id);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});

describe('picket adapter against a cloud that asks it to back off', () => {
  let server: ServerProcess;
  let dir: string;
  let adapterProcess: ManagedProcess | undefined;

  beforeAll(async () => {
    // 400 events per second for the organization: a faster sender gets bo.
    server = await startServerProcess({ env: { PICKET_ORG_EPS_LIMIT: '400' } });
    dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-bo-'));
  });
  afterAll(async () => {
    adapterProcess?.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('pauses on bo and still delivers every line exactly once', async () => {
    const file = path.join(dir, 'burst.log');
    writeFileSync(file, Array.from({ length: 1500 }, (_, i) => `burst ${i + 1}`).join('\n') + '\n');
    const a = startAdapterProcess({ url: server.url, oid: server.credentials.oid, key: server.credentials.installation_key, stateDir: path.join(dir, 'state'), args: ['--seed-key', 'e2e-bo', '--file', file] });
    adapterProcess = a;
    const api = apiClient(server.url, server.credentials.api_key);
    const sid = uuidV5('e2e-bo', server.credentials.oid);
    const stored = async (type: string): Promise<Envelope[]> => {
      const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&event_type=${type}&limit=10000`);
      return res.status === 200 ? res.body.events : [];
    };
    await waitFor(async () => (await stored('log')).length >= 1500, { timeoutMs: 25_000, message: 'all 1500 lines stored' });
    const lines = (await stored('log')).map((e) => String(e.event.text));
    expect(new Set(lines).size).toBe(1500);
    expect(lines).toHaveLength(1500);
    expect(a.logs('stderr').some((l) => l.msg === 'the cloud asks to back off (bo): pausing sending')).toBe(true);
    // Each bo is on the adapter's timeline as BACKOFF (docs/usp.md §4).
    expect((await stored('BACKOFF')).length).toBeGreaterThanOrEqual(1);
  }, 40_000);
});
