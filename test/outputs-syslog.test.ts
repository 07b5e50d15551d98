// Syslog outputs created through the API of a real server (POST /v1/outputs/{oid}, module syslog),
// delivering a sensor's events to a real rsyslogd (harness/rsyslog.ts) over TCP, TLS and UDP: each event
// once, in order, as the stored envelope under its RFC 5424 header. A receiver that is not there makes
// test-send report the destination's error, and the output retry, then pause, until it is saved again.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { freePort } from './harness/processes.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { RSYSLOGD, Rsyslog, type Listener, type Received } from './harness/rsyslog.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const TYPE = 'SYSLOG_E2E';
const HOSTNAME = 'syslog-e2e-host';

function events(run: string, from: number, n: number): SensorEvent[] {
  // Multi-byte characters: the octet count must be in bytes, not characters.
  return Array.from({ length: n }, (_, i) => ({ event_type: TYPE, event_time: 1_767_571_200_000 + (from + i) * 1000, event: { run, n: from + i, text: 'héllo ✓ 日本語 "q" \\ ]' } }));
}

type Outputs = Record<string, Record<string, { status: { state: string; failures: number; last_error: string | null } }>>;

describe.skipIf(!RSYSLOGD)('syslog outputs created through the API, delivering to rsyslogd', () => {
  let rsyslog: Rsyslog;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    rsyslog = await Rsyslog.create();
    await rsyslog.start();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await rsyslog?.stop();
    rsyslog?.remove();
  });

  async function server(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
    const s = await startTestServer(overrides);
    cleanups.push(() => s.close());
    return s;
  }

  async function sensor(s: TestServer): Promise<{ client: ProtocolClient; sid: string }> {
    const client = new ProtocolClient(s.url, 'json');
    await client.hello({ installation_key: s.installationKey }, { host: { hostname: HOSTNAME } });
    const welcome = await client.welcome();
    cleanups.push(() => client.close());
    return { client, sid: welcome.sid };
  }

  /** The stored envelopes of the sensor's test events, by event_id. */
  async function storedById(s: TestServer, sid: string): Promise<Map<string, string>> {
    const page = await s.server.store.queryTimeline({ oid: s.oid, sid, start: 0, end: 9_999_999_999_999, eventType: TYPE, limit: 10_000 });
    return new Map(page.events.map((json) => [(JSON.parse(json) as { routing: { event_id: string } }).routing.event_id, json]));
  }

  const nOf = (m: Received): number => (JSON.parse(m.msg) as { event: { n: number } }).event.n;
  const idOf = (m: Received): string => (JSON.parse(m.msg) as { routing: { event_id: string } }).routing.event_id;

  it('TCP, TLS and UDP outputs deliver every sensor event once, in order, as the stored envelope under its RFC 5424 header; test-send arrives too', async () => {
    const s = await server();
    const api = apiClient(s.url, s.apiKey);
    const common = { module: 'syslog', type: 'event', event_white_list: TYPE };
    const definitions: Record<Listener, Record<string, unknown>> = {
      tcp: { name: 'siem-tcp', dest_host: `127.0.0.1:${rsyslog.ports.tcp}`, facility: 20, severity: 3, app_name: 'picket-e2e', structured_data: '[picket@32473 env="e2e"]' },
      tls: { name: 'siem-tls', dest_host: `127.0.0.1:${rsyslog.ports.tls}`, is_tls: true, is_strict_tls: true, ca_cert: rsyslog.certPem },
      udp: { name: 'siem-udp', dest_host: `127.0.0.1:${rsyslog.ports.udp}`, protocol: 'udp' },
    };
    for (const d of Object.values(definitions)) {
      const created = await api<{ module: string; status: { state: string } }>('POST', `/v1/outputs/${s.oid}`, { ...common, ...d });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      expect(created.body).toMatchObject({ module: 'syslog', status: { state: 'running' } });
    }

    const run = crypto.randomUUID();
    const { client, sid } = await sensor(s);
    for (let seq = 1; seq <= 3; seq++) client.sendEvents(seq, events(run, (seq - 1) * 20, 20));
    await client.waitForAck(3);
    const stored = await storedById(s, sid);
    expect(stored.size).toBe(60);

    const header = { tcp: `<${20 * 8 + 3}>1`, tls: `<${16 * 8 + 6}>1`, udp: `<${16 * 8 + 6}>1` };
    const tail = { tcp: 'picket-e2e - SYSLOG_E2E [picket@32473 env="e2e"]', tls: 'picket - SYSLOG_E2E -', udp: 'picket - SYSLOG_E2E -' };
    for (const listener of ['tcp', 'tls', 'udp'] as const) {
      const got = await rsyslog.waitForCount(listener, run, 60);
      // Once each; over one TCP or TLS connection in order (UDP datagrams may be reordered).
      const ns = got.map(nOf);
      expect(listener === 'udp' ? [...ns].sort((a, b) => a - b) : ns, listener).toEqual(Array.from({ length: 60 }, (_, i) => i));
      expect(new Set(got.map(idOf)).size).toBe(60);
      for (const m of got) {
        const json = stored.get(idOf(m))!;
        const time = new Date((JSON.parse(json) as { routing: { event_time: number } }).routing.event_time).toISOString();
        // The exact message, byte for byte: header from the event's routing, the stored envelope as MSG.
        expect(m.raw).toBe(`${header[listener]} ${time} ${HOSTNAME} ${tail[listener]} ${json}`);
        // And rsyslogd parsed the same header.
        expect({ hostname: m.hostname, msgid: m.msgid, timestamp: m.timestamp, msg: m.msg }).toEqual({ hostname: HOSTNAME, msgid: TYPE, timestamp: time, msg: json });
      }
    }

    // test-send goes straight to the destination and says it was delivered.
    const testRecords = () => rsyslog.lines('tcp').filter((m) => m.app_name === 'picket-e2e' && m.msgid === 'picket_test').length;
    const before = testRecords();
    const test = await api<{ ok: boolean }>('POST', `/v1/outputs/${s.oid}/siem-tcp/test`);
    expect(test.body).toEqual({ ok: true });
    await waitFor(() => testRecords() === before + 1, { message: 'the test record in rsyslogd' });
  });

  it('a receiver that is not there: test-send reports its error, delivery retries then pauses; saving the output with the right port delivers everything at once', async () => {
    // Paused for an hour: only saving the configuration can make it try again within this test.
    const s = await server({ outputPauseAfter: 3, outputPauseS: 3600 });
    const api = apiClient(s.url, s.apiKey);
    const dead = await freePort();
    const definition = { name: 'late', module: 'syslog', type: 'event', event_white_list: TYPE };
    expect((await api('POST', `/v1/outputs/${s.oid}`, { ...definition, dest_host: `127.0.0.1:${dead}` })).status).toBe(200);

    const test = await api<{ ok: boolean; error?: string }>('POST', `/v1/outputs/${s.oid}/late/test`);
    expect(test.status).toBe(200);
    expect(test.body).toEqual({ ok: false, error: expect.stringMatching(new RegExp(`^syslog tcp 127\\.0\\.0\\.1:${dead}: connect ECONNREFUSED`)) });

    const run = crypto.randomUUID();
    const { client } = await sensor(s);
    client.sendEvents(1, events(run, 0, 10));
    client.sendEvents(2, events(run, 10, 10));
    await client.waitForAck(2);
    const status = async () => (await api<Outputs>('GET', `/v1/outputs/${s.oid}`)).body[s.oid]!.late!.status;
    await waitFor(async () => (await status()).state === 'paused', { message: 'the output paused after 3 failures' });
    expect(await status()).toMatchObject({ state: 'paused', failures: 3, last_error: expect.stringContaining('ECONNREFUSED') });
    const errors = await api<{ errors: Array<{ component: string; error: string }> }>('GET', `/v1/errors/${s.oid}`);
    expect(errors.body.errors).toEqual([expect.objectContaining({ component: 'outputs/late', error: expect.stringMatching(/ECONNREFUSED.*3 failures in a row; paused/) })]);
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^picket_outputs_paused 1$/m);
    expect(rsyslog.received('tcp', run)).toEqual([]);

    // Saved again, pointing at the receiver: it leaves the pause at once and delivers from where it stood.
    const saved = await api<{ status: { state: string } }>('POST', `/v1/outputs/${s.oid}`, { ...definition, dest_host: `127.0.0.1:${rsyslog.ports.tcp}` });
    expect(saved.status).toBe(200);
    const got = await rsyslog.waitForCount('tcp', run, 20);
    expect(got.map(nOf)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await waitFor(async () => (await status()).state === 'running' && (await api<{ errors: unknown[] }>('GET', `/v1/errors/${s.oid}`)).body.errors.length === 0, { message: 'running, error cleared' });
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^picket_outputs_paused 0$/m);
    expect((await api<{ ok: boolean }>('POST', `/v1/outputs/${s.oid}/late/test`)).body).toEqual({ ok: true });
  });
});
