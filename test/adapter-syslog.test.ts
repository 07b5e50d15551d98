// Syslog for `picket adapter`: RFC 5424 and RFC 3164 parsing (with the variants real senders produce),
// RFC 6587 TCP framing, and the UDP and TCP listeners fed by the system's `logger` command.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBuffer } from '../src/adapter/disk-buffer.js';
import { SyslogFrameDecoder } from '../src/adapter/sources/syslog-framing.js';
import { SyslogListener, parseListenAddress } from '../src/adapter/sources/syslog-listener.js';
import { parseSyslog } from '../src/adapter/sources/syslog-parser.js';
import { silentLogger } from '../src/observability/logger.js';
import { waitFor } from './harness/wait.js';

const run = promisify(execFile);

describe('syslog parser', () => {
  it('reads RFC 5424 with structured data, escapes and a BOM (RFC 5424 §6.5 example 3)', () => {
    const { record, time } = parseSyslog('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high" note="a \\"quoted\\" \\] bracket"] \uFEFFAn application event log entry...');
    expect(record).toEqual({
      format: 'rfc5424', facility: 20, facility_name: 'local4', severity: 5, severity_name: 'notice',
      timestamp: '2003-10-11T22:14:15.003Z', hostname: 'mymachine.example.com', app_name: 'evntslog', procid: null, msgid: 'ID47',
      structured_data: {
        'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
        'examplePriority@32473': { class: 'high', note: 'a "quoted" ] bracket' },
      },
      message: 'An application event log entry...',
    });
    expect(time).toBe(Date.UTC(2003, 9, 11, 22, 14, 15, 3));
  });

  it('reads RFC 5424 with every field nil and no message, and a time offset', () => {
    const nil = parseSyslog('<13>1 - - - - - -');
    expect(nil.record).toMatchObject({ format: 'rfc5424', timestamp: null, hostname: null, app_name: null, procid: null, msgid: null, structured_data: {}, message: '' });
    expect(nil.time).toBeUndefined();
    const offset = parseSyslog('<34>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It\'s time to make the do-nuts.');
    expect(offset.record).toMatchObject({ facility: 4, facility_name: 'auth', severity: 2, severity_name: 'crit', hostname: '192.0.2.1', app_name: 'myproc', procid: '8710', message: "%% It's time to make the do-nuts." });
    expect(offset.time).toBe(Date.UTC(2003, 7, 24, 12, 14, 15, 0));
  });

  it('keeps repeated structured-data parameters and leaves malformed structured data in the message', () => {
    expect(parseSyslog('<14>1 - h a - - [x@1 ip="10.0.0.1" ip="10.0.0.2"] m').record.structured_data).toEqual({ 'x@1': { ip: ['10.0.0.1', '10.0.0.2'] } });
    const broken = parseSyslog('<14>1 - h a - - [x@1 ip="unterminated] m').record;
    expect(broken.structured_data).toEqual({});
    expect(broken.message).toBe('[x@1 ip="unterminated] m');
  });

  it('reads RFC 3164 with host, tag and pid, in local time of the current year', () => {
    const now = new Date(2026, 10, 23, 12, 0, 0);
    const { record, time } = parseSyslog('<34>Oct 11 22:14:15 mymachine su[230]: \'su root\' failed for lonvick on /dev/pts/8', now);
    expect(record).toMatchObject({ format: 'rfc3164', facility: 4, severity: 2, hostname: 'mymachine', app_name: 'su', procid: '230', msgid: null, message: "'su root' failed for lonvick on /dev/pts/8" });
    expect(time).toBe(new Date(2026, 9, 11, 22, 14, 15).getTime());
    expect(record.timestamp).toBe(new Date(2026, 9, 11, 22, 14, 15).toISOString());
  });

  it('reads RFC 3164 without a host, with a space-padded day, and from last year around new year', () => {
    const now = new Date(2027, 0, 1, 0, 0, 30);
    const { record, time } = parseSyslog('<13>Dec 31 23:59:59 cron: job done', now);
    expect(record).toMatchObject({ hostname: null, app_name: 'cron', procid: null, message: 'job done' });
    expect(time).toBe(new Date(2026, 11, 31, 23, 59, 59).getTime());
    // A few minutes ahead (clock skew) is still this year.
    expect(parseSyslog('<13>Jan  1 00:10:00 host app: x', now).time).toBe(new Date(2027, 0, 1, 0, 10, 0).getTime());
  });

  it('reads the RFC 3339 time rsyslog puts in the BSD format', () => {
    const { record, time } = parseSyslog('<30>2026-11-23T09:35:10.123456+01:00 web-01 nginx[77]: GET / 200');
    expect(record).toMatchObject({ format: 'rfc3164', hostname: 'web-01', app_name: 'nginx', procid: '77', message: 'GET / 200' });
    expect(time).toBe(Date.UTC(2026, 10, 23, 8, 35, 10, 123));
  });

  it('keeps anything else whole: no PRI (user.notice), a PRI out of range, no time', () => {
    expect(parseSyslog('just a line\n').record).toMatchObject({ format: 'unparsed', facility: 1, severity: 5, message: 'just a line' });
    expect(parseSyslog('<999>x').record).toMatchObject({ format: 'unparsed', message: '<999>x' });
    expect(parseSyslog('<11>no time here').record).toMatchObject({ format: 'rfc3164', facility: 1, severity: 3, severity_name: 'err', timestamp: null, message: 'no time here' });
  });
});

describe('syslog TCP framing (RFC 6587)', () => {
  function decode(chunks: string[], max = 1024): Array<[string, boolean]> {
    const decoder = new SyslogFrameDecoder(max);
    const out: Array<[string, boolean]> = [];
    for (const c of chunks) decoder.push(Buffer.from(c), (m, truncated) => out.push([m, truncated]));
    return out;
  }

  it('splits octet-counted frames, also across chunks and in the middle of the length', () => {
    expect(decode(['11 <13>1 - - -', '1', '7 <13>', '1 - - - - ', '- b'])).toEqual([['<13>1 - - -', false], ['<13>1 - - - - - b', false]]);
  });

  it('splits newline- and NUL-delimited frames, and mixes them with octet counting', () => {
    expect(decode(['<13>one\n<13>tw', 'o\r\n<13>three\0', '5 <13>x<13>four\n'])).toEqual([['<13>one', false], ['<13>two\r', false], ['<13>three', false], ['<13>x', false], ['<13>four', false]]);
  });

  it('cuts over-long messages and skips their rest, in both framings', () => {
    expect(decode(['20 <13>0123456789abcdef<13>next\n'], 8)).toEqual([['<13>0123', true], ['<13>next', false]]);
    expect(decode(['<13>0123456789', 'abcdef\n<13>ok\n'], 8)).toEqual([['<13>0123', true], ['<13>ok', false]]);
  });
});

describe('syslog listeners', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function listen(protocol: 'udp' | 'tcp'): Promise<{ buffer: DiskBuffer; listener: SyslogListener }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-syslog-'));
    const buffer = DiskBuffer.open({ stateDir: dir, maxBytes: 1 << 24, fsyncIntervalMs: 1000, logger: silentLogger() });
    const listener = new SyslogListener({ protocol, address: { host: '127.0.0.1', port: 0 }, sink: buffer, logger: silentLogger(), eventType: 'syslog', stampTime: true, maxMessageBytes: 8192 });
    await listener.start();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => buffer.close());
    cleanups.push(() => listener.stop());
    return { buffer, listener };
  }

  function payloads(buffer: DiskBuffer): Array<Record<string, unknown>> {
    buffer.flush();
    const out: Array<Record<string, unknown>> = [];
    for (let m = buffer.nextAfter(0); m; m = buffer.nextAfter(m.x)) out.push({ ...m.fields.j, e: m.fields.e, s: m.fields.s });
    return out;
  }

  it('parses addresses: port, host:port, [ipv6]:port', () => {
    expect(parseListenAddress('514')).toEqual({ host: '0.0.0.0', port: 514 });
    expect(parseListenAddress(':1514')).toEqual({ host: '0.0.0.0', port: 1514 });
    expect(parseListenAddress('127.0.0.1:5140')).toEqual({ host: '127.0.0.1', port: 5140 });
    expect(parseListenAddress('[::1]:514')).toEqual({ host: '::1', port: 514 });
    expect(() => parseListenAddress('host')).toThrow(/invalid listen address/);
    expect(() => parseListenAddress('70000')).toThrow(/invalid listen address/);
  });

  it('receives RFC 5424 and RFC 3164 datagrams from logger -d', async () => {
    const { buffer, listener } = await listen('udp');
    const port = String(listener.address.port);
    await run('logger', ['-n', '127.0.0.1', '-P', port, '-d', '-t', 'billing', '-p', 'local3.warning', '--msgid', 'INV7', '--sd-id', 'order@32473', '--sd-param', 'id="42"', 'invoice 42 overdue']);
    await run('logger', ['-n', '127.0.0.1', '-P', port, '-d', '--rfc3164', '-t', 'cron', 'nightly job done']);
    await waitFor(() => payloads(buffer).length === 2, { message: 'two datagrams' });
    const [modern, bsd] = payloads(buffer) as [Record<string, unknown>, Record<string, unknown>];
    expect(modern).toMatchObject({
      format: 'rfc5424', facility_name: 'local3', severity_name: 'warning', hostname: os.hostname(), app_name: 'billing', msgid: 'INV7',
      message: 'invoice 42 overdue', source_ip: '127.0.0.1', e: 'syslog',
    });
    expect((modern.structured_data as Record<string, unknown>)['order@32473']).toEqual({ id: '42' });
    expect(Math.abs((modern.s as number) - Date.now())).toBeLessThan(60_000);
    expect(bsd).toMatchObject({ format: 'rfc3164', app_name: 'cron', message: 'nightly job done', facility_name: 'user', severity_name: 'notice' });
  });

  it('receives newline-delimited and octet-counted streams from logger -T', async () => {
    const { buffer, listener } = await listen('tcp');
    const port = String(listener.address.port);
    await run('logger', ['-n', '127.0.0.1', '-P', port, '-T', '-t', 'app', 'plain tcp line']);
    await run('logger', ['-n', '127.0.0.1', '-P', port, '-T', '--octet-count', '-t', 'app', 'counted tcp line']);
    const many = Array.from({ length: 50 }, (_, i) => `stdin line ${i}`).join('\n');
    const child = execFile('logger', ['-n', '127.0.0.1', '-P', port, '-T', '-t', 'batch']);
    child.stdin!.end(many + '\n');
    await new Promise((resolve) => child.once('exit', resolve));
    await waitFor(() => payloads(buffer).length === 52, { message: '52 messages' });
    const messages = payloads(buffer).map((p) => p.message);
    expect(messages.slice(0, 2)).toEqual(['plain tcp line', 'counted tcp line']);
    expect(messages.slice(2)).toEqual(Array.from({ length: 50 }, (_, i) => `stdin line ${i}`));
  });

  it('pauses TCP senders while the buffer is full instead of dropping', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-syslog-'));
    // Room for what one socket read (64 KiB of short messages, some 600 KB of records) adds past half.
    const buffer = DiskBuffer.open({ stateDir: dir, maxBytes: 1536 * 1024, fsyncIntervalMs: 1000, logger: silentLogger() });
    const listener = new SyslogListener({ protocol: 'tcp', address: { host: '127.0.0.1', port: 0 }, sink: buffer, logger: silentLogger(), eventType: 'syslog', stampTime: true, maxMessageBytes: 8192 });
    await listener.start();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => buffer.close());
    cleanups.push(() => listener.stop());
    const socket = net.connect(listener.address.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    cleanups.push(() => void socket.destroy());
    let sent = 0;
    /** Resolves once the bytes are in the kernel: on loopback, in the listener's receive queue. */
    const send = (n: number): Promise<void> =>
      new Promise((resolve) => socket.write(Array.from({ length: n }, () => `<13>Nov 23 10:00:00 h app: message ${++sent}\n`).join(''), () => resolve()));
    while (buffer.hasRoom()) {
      const target = sent + 200;
      await send(200);
      await waitFor(() => buffer.stats.appended === target, { message: `${target} messages in` });
    }
    // More than the whole bound: had the sender not been paused, the oldest messages would be dropped.
    await send(5000);
    // Two turns of the event loop: a listener still reading would have taken them in by now.
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(buffer.stats.appended).toBeLessThan(sent);
    expect(buffer.stats.dropped).toBe(0);
    // Acknowledgements free the buffer; the paused sender's messages come in, none lost.
    await waitFor(() => {
      buffer.flush();
      buffer.release(Number.MAX_SAFE_INTEGER);
      return buffer.stats.appended === sent;
    }, { message: 'every message after acknowledgements' });
    expect(buffer.stats.dropped).toBe(0);
    expect(buffer.stats.acknowledged + buffer.size).toBe(sent);
  });
});
