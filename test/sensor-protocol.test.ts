// The reference sensor's side of protocol v1, against a small scripted cloud on a real WebSocket: what it
// sends, how it reacts to acks, closes, control messages and outages. (sensor-session.test.ts runs it
// against the real cloud.)
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { validatePayload } from '../src/catalogue/index.js';
import { createLogger } from '../src/observability/logger.js';
import { decodeFrame, encodeFrame, type Encoding } from '../src/protocol/codec.js';
import type { EventsMessage, HelloMessage, SensorEvent, ServerMessage, WelcomeMessage } from '../src/protocol/messages.js';
import { CrashFile, crashFromError } from '../src/sensor/crash-record.js';
import { ReferenceSensor, SensorFatalError, type ReferenceSensorOptions } from '../src/sensor/reference-sensor.js';
import { waitFor } from './harness/wait.js';

// ---- a scripted cloud ----

interface FakeSession {
  ws: WebSocket;
  hello: HelloMessage;
  encoding: Encoding;
  batches: EventsMessage[];
  closed: { code: number; reason: string; at: number } | null;
  /** When its hello arrived, ms. */
  openedAt: number;
  send(message: ServerMessage): void;
}

type BatchMode = 'store-and-ack' | 'store-no-ack' | 'ignore';

/** Stores batches like the real cloud: once per (sensor, stream, seq), acks cumulative, mark per sensor. */
class FakeCloud {
  readonly sessions: FakeSession[] = [];
  /** Everything stored, in order. */
  readonly stored: SensorEvent[] = [];
  readonly secrets = new Map<string, string>();
  readonly marks = new Map<string, { streamId: string; seq: number }>();
  readonly oid = randomUUID();
  readonly iid = randomUUID();
  batchMode: BatchMode = 'store-and-ack';
  welcome: Partial<WelcomeMessage> = {};
  /** Refuses a hello: [code, reason, extra fields of the error message]. */
  refuse: ((hello: HelloMessage, attempt: number) => [number, string, Record<string, unknown>?] | undefined) | null = null;
  port = 0;
  private wss: WebSocketServer | null = null;
  private attempts = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: this.port, path: '/sensor' });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    this.port = (wss.address() as AddressInfo).port;
    this.wss = wss;
    wss.on('connection', (ws) => this.accept(ws));
  }

  /** Goes away like a crashed cloud: connections cut, port closed. */
  async stop(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    if (!wss) return;
    for (const s of this.sessions) s.ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }

  get last(): FakeSession {
    return this.sessions.at(-1)!;
  }

  storedTypes(): string[] {
    return this.stored.map((e) => e.event_type);
  }

  private accept(ws: WebSocket): void {
    let session: FakeSession | null = null;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const { message, encoding } = decodeFrame(data, isBinary);
      const m = message as HelloMessage | EventsMessage;
      if (m.t === 'hello') {
        session = {
          ws, hello: m, encoding, batches: [], closed: null, openedAt: Date.now(),
          send: (msg) => ws.send(encodeFrame(msg, encoding)),
        };
        const s = session;
        this.sessions.push(s);
        ws.on('close', (code, reason) => (s.closed = { code, reason: reason.toString(), at: Date.now() }));
        this.onHello(s);
      } else if (session) {
        session.batches.push(m);
        this.onBatch(session, m);
      }
    });
  }

  private onHello(s: FakeSession): void {
    const refusal = this.refuse?.(s.hello, ++this.attempts);
    if (refusal) {
      s.send({ t: 'error', code: refusal[0], message: refusal[1], ...refusal[2] });
      s.ws.close(refusal[0], refusal[1]);
      return;
    }
    const auth = s.hello.auth;
    let sid: string;
    let identity: WelcomeMessage['identity'];
    if ('installation_key' in auth) {
      sid = randomUUID();
      const secret = randomUUID();
      this.secrets.set(sid, secret);
      identity = { oid: this.oid, iid: this.iid, sid, secret };
    } else {
      if (this.secrets.get(auth.sid) !== auth.secret) {
        s.send({ t: 'error', code: 4003, message: 'unknown sensor or wrong sensor secret' });
        s.ws.close(4003, 'unknown sensor or wrong sensor secret');
        return;
      }
      sid = auth.sid;
    }
    (s as FakeSession & { sid: string }).sid = sid;
    const mark = this.marks.get(sid);
    const welcome: WelcomeMessage = {
      t: 'welcome', version: 1, oid: this.oid, iid: this.iid, sid,
      ack_seq: mark && mark.streamId === s.hello.stream_id ? mark.seq : 0,
      sync_interval_s: 600, ping_interval_s: 20, liveness_timeout_s: 60, max_frame_bytes: 1_048_576, max_batch_events: 5000,
      server_time: Date.now(), ...this.welcome,
    };
    if (identity) welcome.identity = identity;
    s.send(welcome);
  }

  private onBatch(s: FakeSession, batch: EventsMessage): void {
    const sid = (s as FakeSession & { sid: string }).sid;
    const mark = this.marks.get(sid);
    const stored = mark && mark.streamId === s.hello.stream_id ? mark.seq : 0;
    if (batch.seq <= stored) {
      s.send({ t: 'ack', seq: batch.seq }); // a resend of a stored batch: acknowledged again, not stored
      return;
    }
    if (this.batchMode === 'ignore') return;
    this.stored.push(...batch.events);
    this.marks.set(sid, { streamId: s.hello.stream_id, seq: batch.seq });
    if (this.batchMode === 'store-and-ack') s.send({ t: 'ack', seq: batch.seq });
  }
}

// ---- helpers ----

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startCloud(): Promise<FakeCloud> {
  const cloud = new FakeCloud();
  await cloud.start();
  cleanups.push(() => cloud.stop());
  return cloud;
}

interface TestSensor {
  sensor: ReferenceSensor;
  done: Promise<void>;
  stateDir: string;
  logs: Array<Record<string, unknown>>;
}

async function startSensor(cloud: FakeCloud, options: Partial<ReferenceSensorOptions> = {}): Promise<TestSensor> {
  const stateDir = options.stateDir ?? mkdtempSync(path.join(os.tmpdir(), 'picket-sensor-proto-'));
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const sensor = new ReferenceSensor({
    stateDir, url: cloud.url, installationKey: 'iid.secret', hostname: 'proto-host', logger,
    reconnect: { baseMs: 20, capMs: 200 }, shutdownTimeoutMs: 2000, ...options,
  });
  const { done } = await sensor.start();
  cleanups.push(async () => {
    await sensor.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { sensor, done, stateDir, logs };
}

const seqs = (s: FakeSession): number[] => s.batches.map((b) => b.seq);

// ---- tests ----

describe('reference sensor ↔ scripted cloud', () => {
  it('enrolls with the installation key, keeps the identity, then authenticates with sid and secret on the same stream', async () => {
    const cloud = await startCloud();
    const { sensor, stateDir, logs } = await startSensor(cloud);
    await waitFor(() => cloud.stored.length >= 1, { message: 'STARTING_UP' });
    const first = cloud.sessions[0]!;
    expect(first.encoding).toBe('msgpack');
    expect(first.hello.auth).toEqual({ installation_key: 'iid.secret' });
    expect(first.hello.versions).toEqual([1]);
    expect(first.hello.host).toMatchObject({ hostname: 'proto-host', kernel: false, is_segregated: false });
    expect(cloud.stored[0]).toMatchObject({ event_type: 'STARTING_UP' });
    expect(validatePayload('STARTING_UP', cloud.stored[0]!.event)).toMatchObject({ valid: true });
    expect(cloud.stored[0]!.event_time).toBeGreaterThan(1e12);
    expect(first.batches[0]!.seq).toBe(1);

    const identity = JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as Record<string, string>;
    const sid = identity.sid!;
    expect(cloud.secrets.get(sid)).toBe(identity.secret);
    expect(identity).toMatchObject({ oid: cloud.oid, iid: cloud.iid, url: cloud.url });
    expect(logs.find((l) => l.msg === 'sensor enrolled')).toMatchObject({ sid });
    expect(logs.find((l) => l.msg === 'sensor connected')).toMatchObject({ sid, url: `ws://127.0.0.1:${cloud.port}/sensor` });

    first.ws.close(1001, 'server shutting down');
    await waitFor(() => cloud.sessions.length === 2 && sensor.isConnected, { message: 'the reconnect' });
    const second = cloud.last;
    expect(second.hello.auth).toEqual({ sid, secret: identity.secret });
    expect(second.hello.stream_id).toBe(first.hello.stream_id);
    expect(logs.find((l) => l.msg === 'sensor disconnected')).toMatchObject({ code: 1001, reason: 'server shutting down' });
    expect(cloud.storedTypes().filter((t) => t === 'STARTING_UP')).toHaveLength(1);
  });

  it('speaks JSON when asked to', async () => {
    const cloud = await startCloud();
    await startSensor(cloud, { encoding: 'json' });
    await waitFor(() => cloud.stored.length >= 1, { message: 'STARTING_UP' });
    expect(cloud.last.encoding).toBe('json');
  });

  it('keeps unacknowledged batches, resends the ones the cloud did not store with their original seq, and drops the stored ones', async () => {
    const cloud = await startCloud();
    const { sensor } = await startSensor(cloud);
    await waitFor(() => sensor.isConnected && cloud.stored.length === 1, { message: 'STARTING_UP stored' });
    const first = cloud.last;

    // Stored, but the acks are lost.
    cloud.batchMode = 'store-no-ack';
    for (let i = 0; i < 3; i++) sensor.emit('TEST', { i });
    await waitFor(() => cloud.stored.length === 4, { message: 'three stored, unacknowledged' });
    // Received and never stored.
    cloud.batchMode = 'ignore';
    for (let i = 3; i < 6; i++) sensor.emit('TEST', { i });
    await waitFor(() => first.batches.flatMap((b) => b.events).length === 7, { message: 'all batches sent' });
    const sentSeqs = seqs(first);
    expect(sentSeqs).toEqual([...sentSeqs].sort((a, b) => a - b));
    const storedMark = cloud.marks.values().next().value!.seq;
    const unstored = first.batches.filter((b) => b.seq > storedMark);
    expect(unstored.flatMap((b) => b.events.map((e) => e.event.i))).toEqual([3, 4, 5]);
    expect(sensor.buffer.unackedBatches.length).toBe(first.batches.length - 1);

    cloud.batchMode = 'store-and-ack';
    first.ws.terminate();
    await waitFor(() => cloud.sessions.length === 2 && sensor.buffer.size === 0, { message: 'resend and acks' });
    // Only the batches above the stored mark were resent, with the seq they had.
    expect(seqs(cloud.last)).toEqual(unstored.map((b) => b.seq));
    expect(cloud.stored.filter((e) => e.event_type === 'TEST').map((e) => e.event.i)).toEqual([0, 1, 2, 3, 4, 5]);

    // New events continue the numbering after the resent ones.
    sensor.emit('TEST', { i: 6 });
    await waitFor(() => cloud.stored.length === 8);
    expect(cloud.last.batches.at(-1)!.seq).toBe(unstored.at(-1)!.seq + 1);
  });

  it('keeps at most 16 batches in flight', async () => {
    const cloud = await startCloud();
    const { sensor } = await startSensor(cloud);
    await waitFor(() => cloud.stored.length === 1);
    cloud.batchMode = 'store-no-ack';
    const session = cloud.last;
    // One event per turn of the event loop gives one batch each.
    for (let i = 0; i < 40; i++) {
      sensor.emit('TEST', { i });
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => session.batches.length === 17, { message: '16 batches after STARTING_UP' });
    expect(sensor.buffer.unackedBatches).toHaveLength(16);
    cloud.batchMode = 'store-and-ack';
    session.send({ t: 'ack', seq: session.batches.at(-1)!.seq });
    await waitFor(() => session.batches.flatMap((b) => b.events).length === 41, { message: 'the rest after the ack' });
  });

  it('buffers while the cloud is unreachable, drops the oldest when full, and reports DATA_DROPPED after reconnecting', async () => {
    const cloud = await startCloud();
    const { sensor, logs } = await startSensor(cloud, { bufferEvents: 20 });
    await waitFor(() => sensor.isConnected && cloud.stored.length === 1 && sensor.buffer.size === 0);
    await cloud.stop();
    await waitFor(() => !sensor.isConnected);
    const offlineSince = Date.now();
    for (let i = 0; i < 50; i++) sensor.emit('TEST', { i });
    expect(sensor.buffer.size).toBe(20);
    await waitFor(() => logs.filter((l) => l.msg === 'sensor disconnected' && l.code === 1006).length >= 2, { message: 'failed reconnects' });

    await cloud.start(); // same port
    await waitFor(() => cloud.storedTypes().includes('DATA_DROPPED') && sensor.buffer.size === 0, { message: 'delivery after the outage' });
    const test = cloud.stored.filter((e) => e.event_type === 'TEST').map((e) => e.event.i);
    expect(test).toEqual(Array.from({ length: 20 }, (_, k) => 30 + k));
    const log = logs.find((l) => l.msg === 'the event buffer overflowed; reporting DATA_DROPPED')!;
    expect(log).toMatchObject({ dropped_events: 30 });
    expect(log.since_ms as number).toBeGreaterThanOrEqual(offlineSince);
    expect(log.dropped_bytes as number).toBeGreaterThan(30 * 20);
    const dropped = cloud.stored.find((e) => e.event_type === 'DATA_DROPPED')!;
    expect(dropped.event).toMatchObject({ dropped_events: 30, dropped_bytes: log.dropped_bytes });
    expect(Math.abs((dropped.event.since as number) - (log.since_ms as number) / 1000)).toBeLessThan(1);
    expect(validatePayload('DATA_DROPPED', dropped.event)).toMatchObject({ valid: true });
    // The report of a loss did not itself push another event out.
    expect(sensor.buffer.takeDropReport()).toBeUndefined();
  });

  it('waits with exponential backoff and full jitter between failed attempts, and honours a retry-after', async () => {
    const cloud = await startCloud();
    cloud.refuse = (_hello, attempt) => (attempt <= 4 ? [1013, 'try again later'] : attempt === 5 ? [4010, 'organization at its sensor quota; retry-after=0.3'] : undefined);
    const { sensor, logs } = await startSensor(cloud, { reconnect: { baseMs: 100, capMs: 400, random: () => 0.5 } });
    await waitFor(() => sensor.isConnected, { message: 'admission after the refusals' });
    const waits = logs.filter((l) => l.msg === 'sensor disconnected').map((l) => [l.code, l.retry_in_ms]);
    expect(waits).toEqual([[1013, 50], [1013, 100], [1013, 200], [1013, 200], [4010, 300 + 200]]);
    const refusedAt = cloud.sessions[4]!.closed!.at;
    const nextAt = await waitFor(() => cloud.sessions[5] && Date.now());
    expect(nextAt - refusedAt).toBeGreaterThanOrEqual(300);
  });

  it('stops for good, with a clear error, when the cloud refuses it with a fatal code', async () => {
    const cloud = await startCloud();
    cloud.refuse = () => [4003, 'invalid installation key'];
    const { sensor, done, logs } = await startSensor(cloud);
    const err = await done.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(SensorFatalError);
    expect((err as SensorFatalError).code).toBe(4003);
    expect((err as SensorFatalError).message).toMatch(/invalid installation key/);
    expect(sensor.isRunning).toBe(false);
    expect(cloud.sessions).toHaveLength(1);
    expect(logs.find((l) => l.msg === 'sensor disconnected')).toMatchObject({ code: 4003, retry_in_ms: null });

  });

  it('while deleted it keeps running but only retries every deniedRetryMs, and is back with the same sid once let in', async () => {
    const cloud = await startCloud();
    const first = await startSensor(cloud);
    await waitFor(() => first.sensor.isConnected, { message: 'enrolled' });
    const sid = first.sensor.sid!;
    await first.sensor.stop();
    cloud.refuse = (_hello, attempt) => (attempt <= 3 ? [4011, 'sensor deleted by an operator; denied-for=720h0m0s', { denied_for: '720h0m0s' }] : undefined);
    const { sensor, logs } = await startSensor(cloud, { stateDir: first.stateDir, deniedRetryMs: 300, reconnect: { baseMs: 20, capMs: 50, random: () => 0 } });
    await waitFor(() => sensor.isConnected, { timeoutMs: 10_000, message: 'admitted after the undelete' });
    expect(sensor.sid).toBe(sid);
    const refusals = logs.filter((l) => l.code === 4011 && typeof l.retry_in_ms === 'number');
    expect(refusals).toHaveLength(3);
    expect(refusals.every((l) => l.denied_for === '720h0m0s' && (l.retry_in_ms as number) >= 300)).toBe(true);
    // Three refused sessions spaced by the denied retry, not by the fast reconnect policy.
    const refused = cloud.sessions.slice(-4, -1);
    for (let i = 1; i < refused.length; i++) expect(refused[i]!.openedAt - refused[i - 1]!.closed!.at).toBeGreaterThanOrEqual(290);
  });

  it('keeps the identity a refusal hands over (enrolled over quota) and honours retry_after_s', async () => {
    const cloud = await startCloud();
    const given = { oid: cloud.oid, iid: cloud.iid, sid: randomUUID(), secret: randomUUID() };
    cloud.secrets.set(given.sid, given.secret);
    cloud.refuse = (_hello, attempt) => (attempt === 1 ? [4010, 'organization at its quota of 1 sensor online; retry-after=0.4', { retry_after_s: 0.4, identity: given }] : undefined);
    const { sensor, stateDir } = await startSensor(cloud, { reconnect: { baseMs: 20, capMs: 50, random: () => 0 } });
    await waitFor(() => sensor.isConnected, { message: 'admitted on the next try' });
    expect(cloud.sessions[0]!.hello.auth).toHaveProperty('installation_key');
    expect(cloud.sessions[1]!.hello.auth).toEqual({ sid: given.sid, secret: given.secret });
    expect(sensor.sid).toBe(given.sid);
    expect(JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8'))).toMatchObject({ sid: given.sid, secret: given.secret });
    expect(cloud.sessions[1]!.openedAt - cloud.sessions[0]!.closed!.at).toBeGreaterThanOrEqual(390);
  });

  it('sends a pending crash in every hello until welcomed, then forgets it', async () => {
    const cloud = await startCloud();
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-sensor-proto-'));
    const record = crashFromError(new Error('kaboom'));
    new CrashFile(stateDir).writeSync(record);
    cloud.refuse = (_hello, attempt) => (attempt === 1 ? [1013, 'try again later'] : undefined);
    const { sensor } = await startSensor(cloud, { stateDir });
    await waitFor(() => sensor.isConnected, { message: 'welcomed' });
    const report = { crash_id: record.crash_id, file_id: record.file_id, line_number: record.line_number, thread_id: record.thread_id, crashed_at: record.crashed_at, message: 'Error: kaboom' };
    expect(cloud.sessions[0]!.hello.crash).toEqual(report);
    expect(cloud.sessions[1]!.hello.crash).toEqual(report);
    await waitFor(() => !existsSync(path.join(stateDir, 'crash.json')), { message: 'crash record removed' });
    cloud.sessions[1]!.ws.close(1001, 'server restarting');
    await waitFor(() => cloud.sessions.length === 3 && sensor.isConnected, { message: 'reconnected' });
    expect(cloud.sessions[2]!.hello.crash).toBeUndefined();
  });

  it('a sensor without identity and without key does not start', async () => {
    const cloud = await startCloud();
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-sensor-proto-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const sensor = new ReferenceSensor({ stateDir, url: cloud.url });
    await expect(sensor.start()).rejects.toThrow(/--key/);
  });

  it('sends nothing during a backoff and resumes after it', async () => {
    const cloud = await startCloud();
    const { sensor, logs } = await startSensor(cloud);
    await waitFor(() => sensor.isConnected && cloud.stored.length === 1);
    const backoffAt = Date.now();
    cloud.last.send({ t: 'backoff', seconds: 0.4 });
    await waitFor(() => logs.some((l) => l.msg === 'backoff from the cloud: pausing event delivery'));
    sensor.emit('TEST', { i: 1 });
    await waitFor(() => cloud.stored.length === 2, { message: 'delivery after the backoff' });
    expect(Date.now() - backoffAt).toBeGreaterThanOrEqual(350);
  });

  it('a graceful stop delivers SHUTTING_DOWN, waits for its ack, then closes with 1000', async () => {
    const cloud = await startCloud();
    const { sensor, done } = await startSensor(cloud);
    await waitFor(() => sensor.isConnected && cloud.stored.length === 1);
    const session = cloud.last;
    await sensor.stop();
    await done;
    expect(cloud.storedTypes().at(-1)).toBe('SHUTTING_DOWN');
    expect(validatePayload('SHUTTING_DOWN', cloud.stored.at(-1)!.event)).toMatchObject({ valid: true });
    await waitFor(() => session.closed);
    expect(session.closed).toMatchObject({ code: 1000 });
    expect(sensor.isRunning).toBe(false);
  });

  it('a stop without an ack from the cloud is bounded', async () => {
    const cloud = await startCloud();
    const { sensor } = await startSensor(cloud, { shutdownTimeoutMs: 300 });
    await waitFor(() => sensor.isConnected && cloud.stored.length === 1);
    cloud.batchMode = 'ignore';
    const t0 = Date.now();
    await sensor.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    await waitFor(() => cloud.last.closed);
    expect(cloud.last.closed!.code).toBe(1000);
    expect(cloud.last.batches.at(-1)!.events[0]!.event_type).toBe('SHUTTING_DOWN');
  });

  it('a re-enroll order drops the identity and enrolls again with the installation key', async () => {
    const cloud = await startCloud();
    const { sensor, stateDir } = await startSensor(cloud);
    await waitFor(() => sensor.isConnected);
    const firstSid = sensor.sid!;
    cloud.last.send({ t: 'reenroll' });
    await waitFor(() => sensor.isConnected && sensor.sid !== firstSid, { message: 're-enrollment' });
    expect(cloud.last.hello.auth).toEqual({ installation_key: 'iid.secret' });
    const identity = JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as { sid: string };
    expect(identity.sid).toBe(sensor.sid);
  });

  it('drops a silent connection after liveness_timeout_s and reconnects', async () => {
    const cloud = await startCloud();
    cloud.welcome = { liveness_timeout_s: 0.3 };
    const { sensor, logs } = await startSensor(cloud);
    await waitFor(() => cloud.sessions.length >= 2, { message: 'a reconnect after the silence' });
    expect(logs.find((l) => l.msg === 'sensor disconnected')).toMatchObject({ code: 1006, reason: expect.stringMatching(/liveness/) });
    expect(sensor.isRunning).toBe(true);
  });

  it('sends SYNC every sync_interval_s', async () => {
    const cloud = await startCloud();
    cloud.welcome = { sync_interval_s: 1 };
    await startSensor(cloud);
    await waitFor(() => cloud.storedTypes().includes('SYNC'), { message: 'a SYNC', timeoutMs: 3000 });
    const syncEvent = cloud.stored.find((e) => e.event_type === 'SYNC')!;
    expect(validatePayload('SYNC', syncEvent.event)).toMatchObject({ valid: true });
  });

  it('refuses invalid events at emit() instead of poisoning the stream', async () => {
    const cloud = await startCloud();
    const { sensor } = await startSensor(cloud);
    expect(() => sensor.emit('bad type!', {})).toThrow(/invalid event type/);
    expect(() => sensor.emit('CONNECTED', {})).toThrow(/produced by the cloud/);
    expect(() => sensor.emit('TEST', [] as unknown as Record<string, unknown>)).toThrow(/object/);
    // Catalogue events are checked against their schema.
    expect(() => sensor.emit('SYNC', { ts: 'now' })).toThrow(/SYNC: invalid payload/);
    expect(() => sensor.emit('TEST', { anything: ['goes'] })).not.toThrow();
  });
});
