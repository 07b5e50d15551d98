// Flow control with the real server and the reference sensor: BACKOFF (when the cloud sends it, for an
// organization over its rate or for ingestion behind, that the sensor sends nothing meanwhile and delivers
// everything after), and DATA_DROPPED counting exactly what the sensor's bounded buffer lost (by its
// event limit or its byte limit), never an event the cloud stored although its ack was lost; and the
// sessions' reading paused while the group-commit queue is full, with nothing lost or reordered. The governor's arithmetic is tested on its own with a fake clock.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { ReferenceSensor } from '../src/sensor/reference-sensor.js';
import { IngestGovernor, MAX_RATE_BACKOFF_S, type IngestLag } from '../src/services/ingest-governor.js';
import { LossyRelay } from './harness/fleet-proxy.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

describe('ingest governor', () => {
  const idle: IngestLag = { pendingEvents: 0, oldestWaitMs: 0 };
  const options = { queueEvents: 1000, latencyMs: 500, lagBackoffS: 5, orgEpsLimit: 0 };

  it('asks for nothing while ingestion keeps up and no limit is set', () => {
    const g = new IngestGovernor(options, () => idle, () => 0);
    for (let i = 0; i < 100; i++) expect(g.check('org', 10_000)).toBeNull();
  });

  it('backs off when too many events wait for their commit, or the oldest waits too long', () => {
    let lag: IngestLag = { pendingEvents: 1001, oldestWaitMs: 0 };
    const g = new IngestGovernor(options, () => lag, () => 0);
    expect(g.check('org', 1)).toMatchObject({ seconds: 5, kind: 'ingest_lag' });
    lag = { pendingEvents: 1000, oldestWaitMs: 500 };
    expect(g.check('org', 1)).toBeNull();
    lag = { pendingEvents: 10, oldestWaitMs: 501 };
    expect(g.check('org', 1)).toMatchObject({ seconds: 5, kind: 'ingest_lag', reason: expect.stringContaining('oldest 501 ms') });
  });

  it('gives each organization one second of burst, then a pause long enough to pay the debt back', () => {
    let now = 0;
    const g = new IngestGovernor({ ...options, orgEpsLimit: 100 }, () => idle, () => now);
    expect(g.check('a', 100)).toBeNull(); // the burst
    expect(g.check('b', 100)).toBeNull(); // another organization has its own bucket
    expect(g.check('a', 1)).toMatchObject({ seconds: 1, kind: 'org_rate', reason: 'organization over its limit of 100 events/s' });
    expect(g.check('a', 250)).toMatchObject({ seconds: 3 }); // 251 in debt: 2.51 s to pay back
    now += 2510;
    expect(g.check('a', 1)).toMatchObject({ seconds: 1 }); // paid back exactly, and one more is debt again
    now += 10_000;
    expect(g.check('a', 100)).toBeNull(); // refilled, but never beyond one second's worth
    expect(g.check('a', 1)).not.toBeNull();
    expect(g.check('a', 1_000_000)).toMatchObject({ seconds: MAX_RATE_BACKOFF_S });
  });
});

describe('flow control with the reference sensor and a real server', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function sensorFor(server: { url: string; installationKey: string }, options: { bufferEvents?: number; bufferBytes?: number } = {}) {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-flow-'));
    const logs: Array<Record<string, unknown>> = [];
    const logger = createLogger('trace', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const sensor = new ReferenceSensor({
      stateDir, url: server.url, installationKey: server.installationKey, hostname: 'flow-host', logger,
      reconnect: { baseMs: 20, capMs: 200 }, shutdownTimeoutMs: 2000, ...options,
    });
    await sensor.start();
    cleanups.push(async () => {
      await sensor.stop();
      rmSync(stateDir, { recursive: true, force: true });
    });
    return { sensor, logs };
  }

  async function events(server: TestServer, sid: string, type: string): Promise<Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }>> {
    const api = apiClient(server.url, server.apiKey);
    const res = await api<{ events: Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }> }>(
      'GET', `/v1/insight/${server.oid}/${sid}?start=0&end=${Math.floor(Date.now() / 1000) + 60}&event_type=${type}&limit=10000`,
    );
    expect(res.status).toBe(200);
    return res.body.events;
  }

  it('a sensor told BACKOFF sends nothing for that long, then delivers everything; the BACKOFF is on its timeline', async () => {
    const serverLogs: Array<Record<string, unknown>> = [];
    const server = await startTestServer({ orgEpsLimit: 500 }, { logger: createLogger('trace', { write: (l: string) => void serverLogs.push(JSON.parse(l) as Record<string, unknown>) }) });
    cleanups.push(() => server.close());
    const { sensor, logs } = await sensorFor(server);
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0, { message: 'connected, STARTING_UP delivered' });
    const sid = sensor.sid!;
    // 2,000 events in four bursts: the first goes into debt, the rest wait out the backoff in the sensor's buffer.
    for (let burst = 0; burst < 4; burst++) {
      for (let i = 0; i < 500; i++) sensor.emit('FLOW', { n: burst * 500 + i });
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => logs.some((l) => l.msg === 'backoff from the cloud: pausing event delivery'), { message: 'the sensor got a backoff' });
    await waitFor(() => sensor.buffer.size === 0, { timeoutMs: 20_000, message: 'everything delivered after the backoff' });

    const flow = await events(server, sid, 'FLOW');
    expect(flow.map((e) => e.event.n)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    const backoffs = await events(server, sid, 'BACKOFF');
    expect(backoffs.length).toBeGreaterThanOrEqual(1);
    const first = backoffs[0]!;
    expect(first.routing).toMatchObject({ sid, hostname: 'flow-host', event_type: 'BACKOFF' });
    expect(first.event).toMatchObject({ seconds: expect.any(Number), reason: 'organization over its limit of 500 events/s' });

    // From the sensor's side: it sent no batch while the first backoff was in force, and resumed after it.
    // (Batches it had sent before the backoff arrived may reach a busy server later: that is the in-flight window.)
    const pause = logs.find((l) => l.msg === 'backoff from the cloud: pausing event delivery')!;
    const from = Date.parse(pause.time as string);
    const until = from + (pause.seconds as number) * 1000;
    const sends = logs.filter((l) => l.msg === 'batch sent' || l.msg === 'batch resent').map((l) => Date.parse(l.time as string));
    expect(sends.filter((t) => t > from && t < until - 20)).toEqual([]);
    expect(sends.some((t) => t >= until - 20)).toBe(true);
    // The server logged the BACKOFF for this sensor, with the same length.
    const sent = serverLogs.find((l) => l.msg === 'BACKOFF sent' && l.sid === sid)!;
    expect(sent.seconds).toBe(pause.seconds);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/picket_backoffs_sent_total\{kind="org_rate"\} [1-9]/);
  });

  it('ingestion behind (more events waiting for their commit than PICKET_BACKOFF_QUEUE_EVENTS): BACKOFF of kind ingest lag, on the timeline and obeyed by the sensor; nothing lost', async () => {
    // Batches of at most 50 events, and a queue threshold of 60: two batches waiting for the same group commit are "behind".
    const server = await startTestServer({ maxBatchEvents: 50, backoffQueueEvents: 60, backoffLatencyMs: 60_000, backoffSeconds: 1 });
    cleanups.push(() => server.close());
    const { sensor, logs } = await sensorFor(server);
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0, { message: 'connected, STARTING_UP delivered' });
    const sid = sensor.sid!;
    const told = () => logs.find((l) => l.msg === 'backoff from the cloud: pausing event delivery');
    // Bursts of 1,000 events (20 batches sent at once) until the cloud says it is behind.
    let n = 0;
    await waitFor(() => {
      if (told()) return true;
      for (let i = 0; i < 1000; i++) sensor.emit('LAG', { n: n++ });
      return false;
    }, { message: 'the sensor told to back off' });
    expect(told()!.seconds).toBe(1);
    await waitFor(() => sensor.buffer.size === 0, { timeoutMs: 20_000, message: 'everything delivered after the backoff' });
    // The sensor sent no batch while that backoff was in force, and resumed after it.
    const from = Date.parse(told()!.time as string);
    const sends = logs.filter((l) => l.msg === 'batch sent' || l.msg === 'batch resent').map((l) => Date.parse(l.time as string));
    expect(sends.filter((t) => t > from && t < from + 1000 - 20)).toEqual([]);
    expect(sends.some((t) => t >= from + 1000 - 20)).toBe(true);

    expect((await events(server, sid, 'LAG')).map((e) => e.event.n)).toEqual(Array.from({ length: n }, (_, i) => i));
    const backoffs = await events(server, sid, 'BACKOFF');
    expect(backoffs.length).toBeGreaterThanOrEqual(1);
    for (const b of backoffs) {
      expect(b.routing).toMatchObject({ sid, hostname: 'flow-host', event_type: 'BACKOFF' });
      expect(b.event).toMatchObject({ seconds: 1, reason: expect.stringMatching(/^ingestion behind \((6[1-9]|[7-9]\d|\d{3,}) events waiting, oldest \d+ ms\)$/) });
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^picket_backoffs_sent_total\\{kind="ingest_lag"\\} ${backoffs.length}$`, 'm'));
    expect(metrics).not.toMatch(/picket_backoffs_sent_total\{kind="org_rate"\}/);
  });

  it('a full group-commit queue stops the sessions reading instead of asking for BACKOFF; they read on as it empties, and every event is stored once, in order', async () => {
    // Groups of at most 100 events, batches of at most 50: the queue is full at 200 events waiting, which
    // bursts of 1,000 events from each of two sensors overrun at once.
    const server = await startTestServer({ maxBatchEvents: 50, commitMaxEvents: 100 });
    cleanups.push(() => server.close());
    const a = await sensorFor(server);
    const b = await sensorFor(server);
    await waitFor(() => a.sensor.isConnected && b.sensor.isConnected && a.sensor.buffer.size === 0 && b.sensor.buffer.size === 0, { message: 'both connected, STARTING_UP delivered' });
    const metric = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    let n = 0;
    for (let burst = 0; burst < 5; burst++) {
      for (let i = 0; i < 1000; i++) {
        a.sensor.emit('QUEUE', { n });
        b.sensor.emit('QUEUE', { n });
        n++;
      }
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => a.sensor.buffer.size === 0 && b.sensor.buffer.size === 0, { timeoutMs: 30_000, message: 'everything delivered' });
    expect(await metric('picket_ingest_read_pauses_total')).toBeGreaterThan(0);
    expect(await metric('picket_ingest_queue_events')).toBe(0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).not.toMatch(/picket_backoffs_sent_total\{/);
    for (const { sensor, logs } of [a, b]) {
      expect((await events(server, sensor.sid!, 'QUEUE')).map((e) => e.event.n)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(logs.some((l) => l.msg === 'backoff from the cloud: pausing event delivery')).toBe(false);
    }
  });

  it('DATA_DROPPED reports exactly the events and bytes the bounded buffer dropped while the cloud was away', async () => {
    let server = await startTestServer();
    const { dataDir, port } = server;
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const { sensor } = await sensorFor(server, { bufferEvents: 20 });
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0);
    const sid = sensor.sid!;
    await server.close({ keepData: true });
    await waitFor(() => !sensor.isConnected, { message: 'sensor noticed the outage' });

    // 50 events with a fixed time: the buffer keeps the last 20, drops the first 30.
    const eventTime = Date.now();
    for (let i = 0; i < 50; i++) sensor.emit('OUTAGE', { i }, { eventTime });
    const size = (i: number): number => Buffer.byteLength(JSON.stringify({ event_type: 'OUTAGE', event_time: eventTime, event: { i } }), 'utf8');
    const expectedBytes = Array.from({ length: 30 }, (_, i) => size(i)).reduce((a, b) => a + b, 0);

    server = await startTestServer({ dataDir, port });
    cleanups.push(() => server.close({ keepData: true }));
    await waitFor(async () => (await events(server, sid, 'DATA_DROPPED')).length === 1 && sensor.buffer.size === 0, { message: 'DATA_DROPPED after reconnecting' });
    const [dropped] = await events(server, sid, 'DATA_DROPPED');
    expect(dropped!.event).toMatchObject({ dropped_events: 30, dropped_bytes: expectedBytes });
    expect(Math.abs((dropped!.event.since as number) - eventTime / 1000)).toBeLessThanOrEqual(1);
    expect((await events(server, sid, 'OUTAGE')).map((e) => e.event.i)).toEqual(Array.from({ length: 20 }, (_, k) => 30 + k));
  });
  it('DATA_DROPPED by the byte limit: exactly the events and bytes that did not fit while the cloud was away', async () => {
    let server = await startTestServer();
    const { dataDir, port } = server;
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    // Events of one size (two-digit i, fixed time): the buffer's bytes hold 20 of them, not 21.
    const eventTime = Date.now();
    const size = (i: number): number => Buffer.byteLength(JSON.stringify({ event_type: 'BYTES', event_time: eventTime, event: { i, pad: 'p'.repeat(200) } }), 'utf8');
    const { sensor } = await sensorFor(server, { bufferEvents: 100_000, bufferBytes: 21 * size(10) - 1 });
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0);
    const sid = sensor.sid!;
    await server.close({ keepData: true });
    await waitFor(() => !sensor.isConnected, { message: 'sensor noticed the outage' });

    for (let i = 10; i < 60; i++) sensor.emit('BYTES', { i, pad: 'p'.repeat(200) }, { eventTime });
    expect(sensor.buffer.size).toBe(20);
    const expectedBytes = Array.from({ length: 30 }, (_, k) => size(10 + k)).reduce((a, b) => a + b, 0);

    server = await startTestServer({ dataDir, port });
    cleanups.push(() => server.close({ keepData: true }));
    await waitFor(async () => (await events(server, sid, 'DATA_DROPPED')).length === 1 && sensor.buffer.size === 0, { message: 'DATA_DROPPED after reconnecting' });
    const [dropped] = await events(server, sid, 'DATA_DROPPED');
    expect(dropped!.event).toMatchObject({ dropped_events: 30, dropped_bytes: expectedBytes });
    expect((await events(server, sid, 'BYTES')).map((e) => e.event.i)).toEqual(Array.from({ length: 20 }, (_, k) => 40 + k));
  });

  it('DATA_DROPPED does not count an event dropped from a batch the cloud stored while its ack was lost', async () => {
    let server = await startTestServer();
    const { dataDir, port } = server;
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    // The sensor talks to the cloud through a relay that can lose what the cloud sends (acks).
    const relay = await LossyRelay.start(port);
    cleanups.push(() => relay.close());
    const { sensor } = await sensorFor({ url: relay.url, installationKey: server.installationKey }, { bufferEvents: 10 });
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0);
    const sid = sensor.sid!;

    // A batch of 10 fills the buffer; the cloud stores it, its ack never arrives.
    relay.hold();
    const eventTime = Date.now();
    for (let i = 0; i < 10; i++) sensor.emit('SENT', { i }, { eventTime });
    await waitFor(async () => (await events(server, sid, 'SENT')).length === 10, { message: 'the batch stored' });
    expect(sensor.buffer.size).toBe(10);
    await server.close({ keepData: true });
    await waitFor(() => !sensor.isConnected, { message: 'sensor noticed the outage' });

    // Offline, 14 more: the first pushes the oldest sent event (SENT 0) out of the unacknowledged batch;
    // each later one pushes out the queued event before it (LATER 0..12). LATER 13 stays.
    for (let i = 0; i < 14; i++) sensor.emit('LATER', { i }, { eventTime });
    expect(sensor.buffer.size).toBe(10);
    expect(sensor.buffer.uncertainDrops).toBe(1);
    const size = (i: number): number => Buffer.byteLength(JSON.stringify({ event_type: 'LATER', event_time: eventTime, event: { i } }), 'utf8');
    const expectedBytes = Array.from({ length: 13 }, (_, i) => size(i)).reduce((a, b) => a + b, 0);

    // The welcome says the batch is stored: SENT 0 was not lost, only LATER 0..12 were.
    server = await startTestServer({ dataDir, port });
    cleanups.push(() => server.close({ keepData: true }));
    await waitFor(async () => (await events(server, sid, 'DATA_DROPPED')).length === 1 && sensor.buffer.size === 0, { message: 'DATA_DROPPED after reconnecting' });
    const [dropped] = await events(server, sid, 'DATA_DROPPED');
    expect(dropped!.event).toMatchObject({ dropped_events: 13, dropped_bytes: expectedBytes });
    expect((await events(server, sid, 'SENT')).map((e) => e.event.i)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect((await events(server, sid, 'LATER')).map((e) => e.event.i)).toEqual([13]);
    expect(sensor.buffer.uncertainDrops).toBe(0);
  });
});
