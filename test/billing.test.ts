// Usage metering on a real server with an injected clock: after a known load (events of known frame
// size from one sensor, an output delivering them, an artifact, a sensor online for a known time) the billing_record
// events of the period and GET /v1/usage report exactly those amounts; a restart neither loses nor
// doubles a period. The meter samples only when told (no background tick), so a session that ends between
// two samples must be credited up to its end by the session itself, and output bytes are counted in
// UTF-8 bytes (one event holds non-ASCII text).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BusEvent } from '../src/bus/event-bus.js';
import { validateEvent } from '../src/catalogue/index.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { runCli } from './harness/processes.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const MIN = 60_000;
const P0 = Date.UTC(2026, 0, 5, 0, 0, 0);
const P1 = P0 + 60 * MIN;
const P2 = P1 + 60 * MIN;

interface Record {
  cat: string;
  k: string;
  v: number;
  oid: string;
  record_id: string;
  ts: string;
}
interface UsageAnswer {
  oid: string;
  period_s: number;
  periods: Array<{ start: number; ts: string; current: boolean; usage: Array<{ cat: string; k: string; v: number }> }>;
}

const asMap = (items: ReadonlyArray<{ cat: string; k: string; v: number }>): Map<string, number> => new Map(items.map((r) => [`${r.cat}/${r.k}`, r.v]));

describe('billing (real server, injected clock)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  let clock = P0;

  async function start(dir: string): Promise<{ s: TestServer; published: BusEvent[] }> {
    // No background meter tick within a test: sensor-hours are sampled only by billing.tick(), the usage API
    // and shutdown, so nothing samples a session right before it ends.
    const s = await startTestServer({ dataDir: dir, usageFlushMs: 3_600_000 }, { now: () => clock });
    cleanups.push(() => s.close({ keepData: true }));
    const published: BusEvent[] = [];
    s.server.bus.subscribe((events) => {
      for (const e of events) if (e.stream === 'billing') published.push(e);
    });
    return { s, published };
  }

  /** The output's position has passed everything stored: its delivery is counted (count() precedes it). */
  async function delivered(s: TestServer): Promise<void> {
    const last = await s.server.store.lastLogSeq();
    await waitFor(() => (s.server.outputs.status(s.oid, 'archive')?.cursor ?? 0) >= last, { message: 'the output to pass the end of the log' });
  }

  async function billingStream(s: TestServer): Promise<Array<{ record: Record; routing: { event_type: string } }>> {
    const api = apiClient(s.url, s.apiKey);
    const res = await api<{ events: Array<{ record: Record; routing: { event_type: string } }> }>('GET', `/v1/insight/${s.oid}/stream/billing?start=0&end=9999999999&limit=1000`);
    expect(res.status).toBe(200);
    return res.body.events;
  }

  it('reports exactly the known load in billing_record events and GET /v1/usage, once per period across a restart', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-billing-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    clock = P0 + 10 * MIN;
    let { s, published } = await start(dir);
    const api = apiClient(s.url, s.apiKey);
    const out = await api('POST', `/v1/outputs/${s.oid}`, { name: 'archive', module: 'file', type: 'event', dest_path: 'archive.jsonl' });
    expect(out.status).toBe(200);

    // A linux sensor connects at 00:10 and sends 3 batches (30 events) of known frame sizes.
    const client = new ProtocolClient(s.url, 'json');
    await client.hello({ installation_key: s.installationKey });
    await client.welcome();
    let bytes = 0;
    for (let seq = 1; seq <= 3; seq++) {
      const events = telemetry(10, 'NEW_PROCESS', P0 + seq);
      // Non-ASCII text: its output record is longer in UTF-8 bytes than in characters.
      if (seq === 1) events[0]!.event.COMMAND_LINE = 'grep -r "naïve café — 日本語 ✓" /srv';
      const frame = encodeFrame({ t: 'events', seq, events }, 'json');
      bytes += Buffer.byteLength(frame);
      client.sendRaw(frame);
    }
    await client.waitForAck(3);
    // The output delivers CONNECTED and the 30 events; bytes sent are the delivered records (the file's
    // lines without their newlines: framing is not metered).
    const file = path.join(dir, 'outputs', 'archive.jsonl');
    const lines = await waitFor(() => {
      const l = readFileSync(file, 'utf8').split('\n').filter((x) => x !== '');
      return l.length === 31 ? l : null;
    }, { message: 'the output to deliver 31 events' });
    const sent = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(sent).toBeGreaterThan(lines.reduce((n, l) => n + l.length, 0));
    await delivered(s);
    // One artifact of 3000 bytes is stored (through the ingestion endpoint).
    const key = await api<{ key: string }>('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'uploads' });
    expect(key.status).toBe(201);
    const upload = await fetch(`${s.url}/ingest`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${s.oid}:${key.body.key}`).toString('base64')}`, 'content-type': 'application/octet-stream', 'lc-payload-id': 'capture-1', 'lc-hint': 'txt' },
      body: Buffer.alloc(3000, 'a'),
    });
    expect(upload.status).toBe(200);

    // 01:05: period 00:00-01:00 is over. The sensor was online 50 minutes of it.
    clock = P1 + 5 * MIN;
    await s.server.billing.tick();
    const expected = new Map<string, number>([
      ['sensor/events_recv', 30], ['sensor/bytes_recv', bytes], ['sensor/linux:events_recv', 30], ['sensor/linux:bytes_recv', bytes],
      ['sensor/sensor_hours', Math.round((50 / 60) * 1e6) / 1e6], ['output/bytes_tx', sent], ['output/archive:bytes_tx', sent],
      ['artifact/bytes_stored', 3000],
    ]);
    const stored = await billingStream(s);
    expect(asMap(stored.map((e) => e.record))).toEqual(expected);
    for (const e of stored) {
      expect(validateEvent(e, { produced: true }).errors).toEqual([]);
      expect(e.record).toMatchObject({ oid: s.oid, ts: '2026-01-05 00:00:00' });
      expect(e.record.record_id).toMatch(/^[0-9a-f-]{36}-\d+$/);
    }
    expect(new Set(stored.map((e) => e.record.record_id)).size).toBe(stored.length);
    // The same events went out on the bus, in the billing stream.
    expect(published.map((e) => JSON.parse(e.json) as unknown)).toEqual(stored);

    const usage = await api<UsageAnswer>('GET', `/v1/usage/${s.oid}`);
    expect(usage.status).toBe(200);
    expect(usage.body.period_s).toBe(3600);
    expect(usage.body.periods.map((p) => [p.ts, p.current])).toEqual([['2026-01-05 00:00:00', false], ['2026-01-05 01:00:00', true]]);
    expect(asMap(usage.body.periods[0]!.usage)).toEqual(expected);
    expect(asMap(usage.body.periods[1]!.usage)).toEqual(new Map([['sensor/sensor_hours', Math.round((5 / 60) * 1e6) / 1e6], ['artifact/bytes_stored', 3000]]));

    // More load in 01:00-02:00, then a restart: what was counted before the stop is billed, once.
    const frame = encodeFrame({ t: 'events', seq: 4, events: telemetry(4, 'NEW_PROCESS', P1) }, 'json');
    client.sendRaw(frame);
    await client.waitForAck(4);
    // The sensor leaves at 01:20, with no sample since 01:05: it is online 20 minutes of this period, up to
    // its end (not 5, the last sample; not 30, the shutdown below).
    clock = P1 + 20 * MIN;
    client.close();
    await client.closed;
    // 4 events and the DISCONNECTED delivered in this period (so the session's end has been handled).
    await waitFor(() => readFileSync(file, 'utf8').split('\n').filter((x) => x !== '').length === 36, { message: 'the output to deliver 5 more events' });
    await delivered(s);
    clock = P1 + 30 * MIN;
    const sentAfter = readFileSync(file, 'utf8').split('\n').filter((x) => x !== '').slice(31).reduce((n, l) => n + Buffer.byteLength(l), 0);
    await s.close({ keepData: true });
    cleanups.pop();

    clock = P2 + 30 * MIN;
    ({ s, published } = await start(dir));
    await s.server.billing.tick();
    await s.server.billing.tick();
    const after = await billingStream(s);
    const second = after.filter((e) => e.record.ts === '2026-01-05 01:00:00');
    expect(after.filter((e) => e.record.ts === '2026-01-05 00:00:00')).toHaveLength(expected.size);
    const bytes4 = Buffer.byteLength(frame);
    expect(asMap(second.map((e) => e.record))).toEqual(new Map<string, number>([
      ['sensor/events_recv', 4], ['sensor/bytes_recv', bytes4], ['sensor/linux:events_recv', 4], ['sensor/linux:bytes_recv', bytes4],
      ['sensor/sensor_hours', Math.round((20 / 60) * 1e6) / 1e6], ['output/bytes_tx', sentAfter], ['output/archive:bytes_tx', sentAfter],
      ['artifact/bytes_stored', 3000],
    ]));
    expect(published).toHaveLength(second.length);
    const usage2 = await apiClient(s.url, s.apiKey)<UsageAnswer>('GET', `/v1/usage/${s.oid}?start=${P0 / 1000}`);
    expect(usage2.body.periods.map((p) => [p.ts, p.current])).toEqual([['2026-01-05 00:00:00', false], ['2026-01-05 01:00:00', false], ['2026-01-05 02:00:00', true]]);
    expect(asMap(usage2.body.periods[2]!.usage)).toEqual(new Map([['artifact/bytes_stored', 3000]]));
    expect(asMap(usage2.body.periods[1]!.usage)).toEqual(asMap(second.map((e) => e.record)));

    // picket usage prints the same answer (--json) and a table of it.
    const connection = ['--url', s.url, '--api-key', s.apiKey, '--start', String(P0 / 1000)];
    const json = await runCli(['usage', '--json', ...connection], { env: { PICKET_URL: '', PICKET_API_KEY: '' } });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(usage2.body);
    const table = await runCli(['usage', ...connection], { env: { PICKET_URL: '', PICKET_API_KEY: '' } });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/2026-01-05 01:00:00\s+output\s+archive:bytes_tx\s+\d+/);
  });

  it('delivers billing records to an output of the billing stream', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-billing-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    clock = P0 + 10 * MIN;
    const { s } = await start(dir);
    const api = apiClient(s.url, s.apiKey);
    expect((await api('POST', `/v1/outputs/${s.oid}`, { name: 'bills', module: 'file', type: 'billing', dest_path: 'bills.jsonl' })).status).toBe(200);
    const client = new ProtocolClient(s.url, 'json');
    cleanups.push(() => client.close());
    await client.hello({ installation_key: s.installationKey });
    await client.welcome();
    client.sendEvents(1, telemetry(3, 'NEW_PROCESS', P0));
    await client.waitForAck(1);
    clock = P1;
    await s.server.billing.tick();
    const file = path.join(dir, 'outputs', 'bills.jsonl');
    const delivered = await waitFor(() => {
      try {
        const l = readFileSync(file, 'utf8').split('\n').filter((x) => x !== '').map((x) => JSON.parse(x) as { record: Record });
        return l.length > 0 ? l : null;
      } catch {
        return null;
      }
    }, { message: 'billing records in the output' });
    for (const e of delivered) expect(validateEvent(e, { produced: true }).errors).toEqual([]);
    expect(asMap(delivered.map((e) => e.record)).get('sensor/events_recv')).toBe(3);
    expect(asMap(delivered.map((e) => e.record)).get('sensor/linux:events_recv')).toBe(3);
  });

  it('keeps GET /v1/usage to the caller\'s organization', async () => {
    clock = P0;
    const { s } = await start(mkdtempSync(path.join(os.tmpdir(), 'picket-billing-')));
    cleanups.push(() => rmSync(s.dataDir, { recursive: true, force: true }));
    const res = await apiClient(s.url, s.apiKey)<{ code: string }>('GET', '/v1/usage/6f1c0c39-3c4a-4f7e-9a53-1d6f0f3f2a11');
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
    const bad = await apiClient(s.url, s.apiKey)<{ code: string; field: string }>('GET', `/v1/usage/${s.oid}?start=20&end=10`);
    expect(bad.status).toBe(400);
  });
});
