// The syslog output against a real rsyslogd started by the test (harness/rsyslog.ts): plain TCP (imptcp,
// octet counting), TLS (imtcp with the gtls driver and a self-signed certificate) and UDP (imudp).
// rsyslogd writes every message it receives to a file per listener as JSON: the raw message plus its own
// RFC 5424 parse of the header. (Outputs created through a server's API: outputs-syslog.test.ts.)
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syslogModule } from '../src/sinks/outputs/modules/syslog.js';
import { OutputConfigError, type OutputModule, type OutputRecord } from '../src/sinks/outputs/output-module.js';
import { RSYSLOGD, Rsyslog, type Received } from './harness/rsyslog.js';
import { waitFor } from './harness/wait.js';

function createOutput(fields: Record<string, string | number | boolean>): OutputModule {
  return syslogModule.create({ name: 'siem', oid: 'org-1', fields, dataDir: os.tmpdir() });
}

function record(run: string, seq: number, options: { hostname?: string | null; eventType?: string; eventTime?: number; extra?: Record<string, unknown> } = {}): OutputRecord {
  const eventType = options.eventType ?? 'NEW_PROCESS';
  const eventTime = options.eventTime ?? 1_700_000_000_000 + seq * 1001;
  const routing: Record<string, unknown> = { oid: 'org-1', sid: 'sensor-1', event_type: eventType, event_time: eventTime };
  if (options.hostname !== null) routing.hostname = options.hostname ?? 'web-01.example.com';
  const body = { routing, event: { run, seq, text: 'héllo ✓ 日本語 "quoted" \\ ]', ...options.extra } };
  return { seq, oid: 'org-1', sid: 'sensor-1', event_type: eventType, event_time: eventTime, body, json: JSON.stringify(body) };
}

function records(run: string, from: number, count: number): OutputRecord[] {
  return Array.from({ length: count }, (_, i) => record(run, from + i));
}

// `<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`, SD being `-` or SD-ELEMENTs.
const RFC5424 = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^"\]]|"(?:[^"\\]|\\.)*")*\])+) ([\s\S]*)$/;

/** Checks one received message against the record it came from, both in the raw bytes and as rsyslogd parsed them. */
function expectMessage(m: Received, r: OutputRecord, header: { pri: number; hostname: string; appName: string; msgid: string; sd: string }): void {
  const parts = RFC5424.exec(m.raw);
  expect(parts, m.raw.slice(0, 200)).not.toBeNull();
  const [, pri, version, timestamp, hostname, appName, procid, msgid, sd, msg] = parts!;
  const iso = new Date(r.event_time).toISOString();
  expect({ pri, version, timestamp, hostname, appName, procid, msgid, sd }).toEqual({
    pri: String(header.pri), version: '1', timestamp: iso, hostname: header.hostname, appName: header.appName, procid: '-', msgid: header.msgid, sd: header.sd,
  });
  expect(msg).toBe(r.json);
  expect(JSON.parse(msg!)).toEqual(r.body);
  // rsyslogd read the same header.
  expect({ pri: m.pri, version: m.version, timestamp: m.timestamp, hostname: m.hostname, app_name: m.app_name, procid: m.procid, msgid: m.msgid, sd: m.sd }).toEqual({
    pri: String(header.pri), version: '1', timestamp: iso, hostname: header.hostname, app_name: header.appName, procid: '-', msgid: header.msgid, sd: header.sd,
  });
  expect(JSON.parse(m.msg)).toEqual(r.body);
}

function seqOf(m: Received): number {
  return Number(/"seq":(\d+)/.exec(m.raw)?.[1]);
}

describe('syslog output configuration', () => {
  const expectConfigError = (fields: Record<string, string | number | boolean>, field: string, message: RegExp): void => {
    let error: unknown;
    try {
      createOutput(fields);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(OutputConfigError);
    expect((error as OutputConfigError).field).toBe(field);
    expect((error as Error).message).toMatch(message);
  };

  it('refuses a dest_host that is not host:port', () => {
    for (const dest of ['siem.example.com', 'siem.example.com:', 'siem.example.com:70000', 'tcp://siem:514', '::1:514', '[not-ip]:514', '']) {
      expectConfigError({ dest_host: dest }, 'dest_host', /dest_host must be host:port/);
    }
    expect(() => createOutput({ dest_host: '[::1]:6514' })).not.toThrow();
  });

  it('accepts RFC 5424 structured data and refuses anything else, naming the problem', () => {
    expect(() => createOutput({ dest_host: '127.0.0.1:514', structured_data: '[picket@32473 env="prod" note="a \\] \\"b\\""][origin ip="10.0.0.1"]' })).not.toThrow();
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: 'env=prod' }, 'structured_data', /expected "\[" at position 0/);
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: '[env x="y"]' }, 'structured_data', /name@<enterprise number>/);
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: '[a@1 x="y]"]' }, 'structured_data', /must be escaped/);
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: '[a@1 x="y"][a@1 z="w"]' }, 'structured_data', /appears twice/);
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: '[a@1 x="y"' }, 'structured_data', /expected " " or "\]"/);
    expectConfigError({ dest_host: '127.0.0.1:514', structured_data: '[a@1 x=y]' }, 'structured_data', /expected ="value"/);
  });

  it('refuses contradictory or malformed TLS and header settings', () => {
    expectConfigError({ dest_host: '127.0.0.1:514', protocol: 'udp', is_tls: true }, 'is_tls', /DTLS/);
    expectConfigError({ dest_host: '127.0.0.1:514', is_strict_tls: true }, 'is_strict_tls', /needs is_tls/);
    expectConfigError({ dest_host: '127.0.0.1:514', is_tls: true, is_strict_tls: true, ca_cert: 'not a certificate' }, 'ca_cert', /not a PEM certificate/);
    expectConfigError({ dest_host: '127.0.0.1:514', protocol: 'sctp' }, 'protocol', /tcp or udp/);
    expectConfigError({ dest_host: '127.0.0.1:514', facility: 24 }, 'facility', /0 to 23/);
    expectConfigError({ dest_host: '127.0.0.1:514', severity: -1 }, 'severity', /0 to 7/);
    expectConfigError({ dest_host: '127.0.0.1:514', app_name: 'my app' }, 'app_name', /printable ASCII/);
  });
});

describe.skipIf(!RSYSLOGD)('syslog output delivering to rsyslogd', () => {
  let rsyslog: Rsyslog;
  const opened: OutputModule[] = [];
  const output = (fields: Record<string, string | number | boolean>): OutputModule => {
    const m = createOutput(fields);
    opened.push(m);
    return m;
  };

  beforeAll(async () => {
    rsyslog = await Rsyslog.create();
    await rsyslog.start();
  });
  afterAll(async () => {
    try {
      await Promise.all(opened.map((m) => m.close()));
    } finally {
      await rsyslog?.stop();
      rsyslog?.remove();
    }
  });

  it('TCP: every record arrives once, octet-counted, with its RFC 5424 header and the JSON as MSG', async () => {
    const out = output({
      dest_host: `127.0.0.1:${rsyslog.ports.tcp}`, facility: 20, severity: 3, app_name: 'picket-test', structured_data: '[picket@32473 env="prod" note="a \\] b"]',
    });
    expect(out.batching).toEqual({ maxRecords: 500, maxWaitMs: 0 });
    const first = [
      ...records('tcp', 1, 40),
      // 100 KB: spans many TCP segments; multi-byte characters make the octet count differ from the string length.
      record('tcp', 41, { extra: { big: 'ü'.repeat(50_000) } }),
      record('tcp', 42, { hostname: null }),
      record('tcp', 43, { eventType: 'A_VERY_LONG_EVENT_TYPE_NAME_THAT_GOES_ON_AND_ON' }),
    ];
    await out.send(first);
    const second = records('tcp', 44, 20);
    await out.send(second);
    const sent = [...first, ...second];

    const got = await rsyslog.waitForCount('tcp', 'tcp', sent.length);
    expect(got.map(seqOf)).toEqual(sent.map((r) => r.seq)); // once each, in order
    got.forEach((m, i) => {
      const r = sent[i]!;
      expectMessage(m, r, {
        pri: 20 * 8 + 3,
        hostname: r.seq === 42 ? os.hostname() : 'web-01.example.com',
        appName: 'picket-test',
        msgid: r.seq === 43 ? 'A_VERY_LONG_EVENT_TYPE_NAME_THAT' : 'NEW_PROCESS',
        sd: '[picket@32473 env="prod" note="a \\] b"]',
      });
    });
  });

  it('TLS: records arrive once with the same framing; strict verification trusts ca_cert and refuses an unknown certificate', async () => {
    const dest = `127.0.0.1:${rsyslog.ports.tls}`;
    const unverified = output({ dest_host: dest, is_tls: true });
    const sent = records('tls', 1, 30);
    await unverified.send(sent.slice(0, 15));
    const verified = output({ dest_host: dest, is_tls: true, is_strict_tls: true, ca_cert: rsyslog.certPem });
    await verified.send(sent.slice(15));

    const got = await rsyslog.waitForCount('tls', 'tls', sent.length);
    expect(got.map(seqOf).sort((a, b) => a - b)).toEqual(sent.map((r) => r.seq));
    for (const m of got) expectMessage(m, sent[seqOf(m) - 1]!, { pri: 16 * 8 + 6, hostname: 'web-01.example.com', appName: 'picket', msgid: 'NEW_PROCESS', sd: '-' });

    const strictWithoutCa = output({ dest_host: dest, is_tls: true, is_strict_tls: true });
    await expect(strictWithoutCa.send(records('tls-refused', 1, 1))).rejects.toThrow(/^syslog tls 127\.0\.0\.1:\d+: self-signed certificate/);
  });

  it('UDP: one datagram per record, each arriving once; a message over 65,000 bytes is truncated to fit', async () => {
    const out = output({ dest_host: `127.0.0.1:${rsyslog.ports.udp}`, protocol: 'udp', severity: 4 });
    const sent = records('udp', 1, 25);
    await out.send(sent);
    const got = await rsyslog.waitForCount('udp', 'udp', sent.length);
    expect(got.map(seqOf).sort((a, b) => a - b)).toEqual(sent.map((r) => r.seq));
    for (const m of got) expectMessage(m, sent[seqOf(m) - 1]!, { pri: 16 * 8 + 4, hostname: 'web-01.example.com', appName: 'picket', msgid: 'NEW_PROCESS', sd: '-' });

    const big = record('udp-big', 1, { extra: { big: '€'.repeat(40_000) } });
    await out.send([big]);
    const [m] = await rsyslog.waitForCount('udp', 'udp-big', 1);
    const bytes = Buffer.byteLength(m!.raw);
    expect(bytes).toBeLessThanOrEqual(65_000);
    expect(bytes).toBeGreaterThan(65_000 - 3); // cut at a character boundary, not earlier
    const header = `<${16 * 8 + 4}>1 ${new Date(big.event_time).toISOString()} web-01.example.com picket - NEW_PROCESS - `;
    expect(m!.raw.startsWith(header)).toBe(true);
    expect(big.json.startsWith(m!.raw.slice(header.length))).toBe(true);
    expect(m!.raw.length - header.length).toBeLessThan(big.json.length);
  });

  it('is_no_header sends only the JSON record, one per message, over TCP and UDP', async () => {
    const tcp = output({ dest_host: `127.0.0.1:${rsyslog.ports.tcp}`, is_no_header: true });
    const udp = output({ dest_host: `127.0.0.1:${rsyslog.ports.udp}`, protocol: 'udp', is_no_header: true });
    const sent = records('noheader', 1, 12);
    await tcp.send(sent);
    await udp.send(sent);
    for (const listener of ['tcp', 'udp'] as const) {
      const got = await rsyslog.waitForCount(listener, 'noheader', sent.length);
      expect(got.map(seqOf).sort((a, b) => a - b)).toEqual(sent.map((r) => r.seq));
      for (const m of got) {
        expect(m.raw).toBe(sent[seqOf(m) - 1]!.json);
        expect(JSON.parse(m.raw)).toEqual(sent[seqOf(m) - 1]!.body);
      }
    }
  });

  it('close() ends the connection; sending afterwards is an error', async () => {
    const out = createOutput({ dest_host: `127.0.0.1:${rsyslog.ports.tcp}` });
    await out.send([record('close', 1)]);
    await rsyslog.waitForCount('tcp', 'close', 1);
    const closedBefore = rsyslog.closedTcpSessions();
    await out.close();
    await waitFor(() => rsyslog.closedTcpSessions() === closedBefore + 1, { timeoutMs: 5_000, message: 'rsyslogd to see the connection closed' });
    await expect(out.send([record('close', 2)])).rejects.toThrow(/^syslog tcp 127\.0\.0\.1:\d+: output closed$/);
  });

  it('a stopped receiver makes send() reject with what went wrong; once it is back the next batch gets through', async () => {
    const tcp = output({ dest_host: `127.0.0.1:${rsyslog.ports.tcp}` });
    const tls = output({ dest_host: `127.0.0.1:${rsyslog.ports.tls}`, is_tls: true });
    const udp = output({ dest_host: `127.0.0.1:${rsyslog.ports.udp}`, protocol: 'udp' });
    // Connections are up before the receiver goes away.
    await tcp.send([record('reconnect-tcp', 1)]);
    await tls.send([record('reconnect-tls', 1)]);
    await udp.send([record('reconnect-udp', 1)]);
    await rsyslog.waitForCount('tcp', 'reconnect-tcp', 1);
    await rsyslog.waitForCount('tls', 'reconnect-tls', 1);
    await rsyslog.waitForCount('udp', 'reconnect-udp', 1);

    // The batches are handed over before the outputs' event loop has seen the connections end: they must
    // still not be written into the dead connections (which would "succeed" and lose them).
    const exited = rsyslog.stopSynchronously();
    const tcpSend = tcp.send([record('reconnect-tcp', 2)]);
    const tlsSend = tls.send([record('reconnect-tls', 2)]);
    await expect(tcpSend).rejects.toThrow(/^syslog tcp 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    await expect(tlsSend).rejects.toThrow(/^syslog tls 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    await exited;
    // UDP learns of it only from the ICMP answer to a datagram, reported by a later send.
    const udpError = await waitFor(async () => {
      try {
        await udp.send([record('reconnect-udp-lost', 1)]);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    }, { message: 'a udp send to reject' });
    expect(udpError.message).toMatch(/^syslog udp 127\.0\.0\.1:\d+: .*ECONNREFUSED/);

    await rsyslog.start();
    await tcp.send(records('reconnect-tcp', 2, 3));
    await tls.send(records('reconnect-tls', 2, 3));
    await udp.send(records('reconnect-udp', 2, 3));
    for (const listener of ['tcp', 'tls', 'udp'] as const) {
      const got = await rsyslog.waitForCount(listener, `reconnect-${listener}`, 4);
      expect(got.map(seqOf).sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    }
  });
});
