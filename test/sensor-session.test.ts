// The reference sensor in this process against a real cloud (real gateway, real SQLite): enrollment,
// server restarts, lost acknowledgements, outages and graceful stops, checked in what the cloud stored.
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { ReferenceSensor, type ReferenceSensorOptions } from '../src/sensor/reference-sensor.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: Record<string, unknown> & { event_type: string; event_time: number; sid: string };
  event: Record<string, unknown>;
}

/** A TCP relay between sensor and cloud that can swallow either direction and cut every connection. */
class Relay {
  port = 0;
  /** Bytes from the cloud to the sensor are dropped (acks get lost). */
  swallowDownstream = false;
  /** Bytes from the sensor to the cloud are dropped (batches get lost). */
  swallowUpstream = false;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.upstreamPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('data', (d) => void (this.swallowUpstream || upstream.write(d)));
      upstream.on('data', (d) => void (this.swallowDownstream || client.write(d)));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Cuts every relayed connection, like a network failure (no close handshake). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function cloud(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const server = await startTestServer(overrides);
  let closed = false;
  const close = server.close.bind(server);
  server.close = async (opts) => {
    closed = true;
    await close(opts);
  };
  cleanups.push(async () => {
    if (!closed) await close();
  });
  return server;
}

async function sensorFor(url: string, key: string, options: Partial<ReferenceSensorOptions> = {}): Promise<{ sensor: ReferenceSensor; logs: Array<Record<string, unknown>>; stateDir: string }> {
  const stateDir = options.stateDir ?? tmpDir('picket-sensor-session-');
  const logs: Array<Record<string, unknown>> = [];
  const sensor = new ReferenceSensor({
    stateDir, url, installationKey: key, hostname: 'session-host',
    logger: createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    reconnect: { baseMs: 50, capMs: 300 },
    ...options,
  });
  await sensor.start();
  cleanups.push(() => sensor.stop());
  return { sensor, logs, stateDir };
}

function timelineOf(server: { url: string; apiKey: string; oid: string }) {
  const api = apiClient(server.url, server.apiKey);
  return async (sid: string): Promise<Envelope[]> => {
    const end = Math.ceil(Date.now() / 1000) + 60;
    const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.oid}/${sid}?start=0&end=${end}&limit=10000`);
    if (res.status !== 200) throw new Error(`timeline: HTTP ${res.status}`);
    return res.body.events;
  };
}

const typesOf = (events: Envelope[]): string[] => events.map((e) => e.routing.event_type);
const testIndexes = (events: Envelope[]): number[] => events.filter((e) => e.routing.event_type === 'TEST').map((e) => e.event.i as number).sort((a, b) => a - b);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);

describe('reference sensor against the real cloud', () => {
  it('enrolls: the identity file (mode 0600) holds the sid the cloud knows, and enrollment, CONNECTED and STARTING_UP are stored', async () => {
    const server = await cloud();
    const { sensor, stateDir, logs } = await sensorFor(server.url, server.installationKey);
    await waitFor(() => sensor.isConnected, { message: 'the welcome' });
    const sid = sensor.sid!;
    const file = path.join(stateDir, 'identity.json');
    const identity = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    expect(identity).toMatchObject({ sid, oid: server.oid });
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(logs.find((l) => l.msg === 'sensor enrolled')).toMatchObject({ sid });

    const timeline = timelineOf(server);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return typesOf(ev).includes('STARTING_UP') ? ev : undefined;
    }, { message: 'STARTING_UP stored' });
    expect(typesOf(events).filter((t) => t === 'enrollment')).toHaveLength(1);
    expect(typesOf(events).filter((t) => t === 'CONNECTED')).toHaveLength(1);
    const connected = events.find((e) => e.routing.event_type === 'CONNECTED')!;
    expect(connected.routing.hostname).toBe('session-host');
  });

  it('after a server restart it comes back with the same sid, and what it buffered while the cloud was down is delivered', async () => {
    const dataDir = tmpDir('picket-session-data-');
    let server = await cloud({ dataDir });
    const port = server.port;
    const { sensor, logs } = await sensorFor(server.url, server.installationKey);
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0, { message: 'STARTING_UP acknowledged' });
    const sid = sensor.sid!;

    await server.close();
    await waitFor(() => !sensor.isConnected, { message: 'the disconnect' });
    for (let i = 0; i < 25; i++) sensor.emit('TEST', { i });
    await waitFor(() => logs.filter((l) => l.msg === 'sensor disconnected').length >= 3, { message: 'failed attempts while the cloud is down' });
    expect(logs.find((l) => l.msg === 'sensor disconnected')).toMatchObject({ code: 1001 });
    expect(sensor.buffer.size).toBe(25);

    server = await cloud({ dataDir, port });
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0, { message: 'reconnect and delivery' });
    expect(sensor.sid).toBe(sid);
    const timeline = timelineOf(server);
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return testIndexes(ev).length === 25 ? ev : undefined;
    }, { message: 'the buffered events in the store' });
    expect(testIndexes(events)).toEqual(range(0, 25));
    const types = typesOf(events);
    expect(types.filter((t) => t === 'enrollment')).toHaveLength(1);
    expect(types.filter((t) => t === 'CONNECTED')).toHaveLength(2);
    expect(types.filter((t) => t === 'STARTING_UP')).toHaveLength(1);
    const api = apiClient(server.url, server.apiKey);
    const list = await api<{ sensors: unknown[] }>('GET', `/v1/sensors/${server.oid}`);
    expect(list.body.sensors).toHaveLength(1);
  });

  it('events whose acks were lost, and batches the cloud never got, are each stored exactly once after a reconnect', async () => {
    const server = await cloud();
    const relay = new Relay(server.port);
    await relay.start();
    cleanups.push(() => relay.close());
    const { sensor } = await sensorFor(relay.url, server.installationKey);
    await waitFor(() => sensor.isConnected && sensor.buffer.size === 0, { message: 'STARTING_UP acknowledged' });
    const sid = sensor.sid!;
    const timeline = timelineOf(server);

    // Stored by the cloud, acknowledgement lost on the way back.
    relay.swallowDownstream = true;
    for (let i = 0; i < 300; i++) sensor.emit('TEST', { i });
    await waitFor(async () => testIndexes(await timeline(sid)).length === 300, { message: 'the cloud storing the first 300' });
    expect(sensor.buffer.size).toBe(300);
    // Sent by the sensor, never received by the cloud.
    relay.swallowUpstream = true;
    for (let i = 300; i < 400; i++) sensor.emit('TEST', { i });
    await waitFor(() => sensor.buffer.pendingCount === 0, { message: 'the last batches sent into the void' });
    expect(sensor.buffer.size).toBe(400);
    const unacked = sensor.buffer.unackedBatches.map((b) => b.seq);

    relay.swallowDownstream = false;
    relay.swallowUpstream = false;
    relay.cut();
    await waitFor(() => sensor.sessions === 2 && sensor.buffer.size === 0, { timeoutMs: 20_000, message: 'resend and acks after the reconnect' });
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return testIndexes(ev).length >= 400 ? ev : undefined;
    }, { message: 'all 400 stored' });
    expect(testIndexes(events)).toEqual(range(0, 400));
    expect(unacked.length).toBeGreaterThan(1);
  });

  it('a graceful stop stores SHUTTING_DOWN before the cloud records DISCONNECTED (closed)', async () => {
    const server = await cloud();
    const { sensor } = await sensorFor(server.url, server.installationKey);
    await waitFor(() => sensor.isConnected, { message: 'the welcome' });
    const sid = sensor.sid!;
    await sensor.stop();
    const timeline = timelineOf(server);
    // The stop waited for the ack: SHUTTING_DOWN is stored by the time stop() returns.
    expect(typesOf(await timeline(sid))).toContain('SHUTTING_DOWN');
    const events = await waitFor(async () => {
      const ev = await timeline(sid);
      return typesOf(ev).includes('DISCONNECTED') ? ev : undefined;
    }, { message: 'DISCONNECTED' });
    const types = typesOf(events);
    expect(types.indexOf('SHUTTING_DOWN')).toBeLessThan(types.indexOf('DISCONNECTED'));
    expect(events.find((e) => e.routing.event_type === 'DISCONNECTED')!.event.reason).toBe('closed');
  });

  it('a restarted sensor process (new stream) keeps its sid and is not enrolled twice', async () => {
    const server = await cloud();
    const stateDir = tmpDir('picket-sensor-restart-');
    const first = await sensorFor(server.url, server.installationKey, { stateDir });
    await waitFor(() => first.sensor.isConnected && first.sensor.buffer.size === 0);
    const sid = first.sensor.sid!;
    await first.sensor.stop();
    // Started without a key: the identity is enough.
    const second = await sensorFor(server.url, '', { stateDir, installationKey: undefined });
    await waitFor(() => second.sensor.isConnected && second.sensor.buffer.size === 0);
    expect(second.sensor.sid).toBe(sid);
    expect(second.sensor.streamId).not.toBe(first.sensor.streamId);
    const timeline = timelineOf(server);
    const types = typesOf(await timeline(sid));
    expect(types.filter((t) => t === 'enrollment')).toHaveLength(1);
    expect(types.filter((t) => t === 'STARTING_UP')).toHaveLength(2);
  });
});
