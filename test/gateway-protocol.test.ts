// Sensor protocol v1 at the wire: welcome, cumulative acks, resends, and bad input. A bad session is
// closed with a reason, the others keep being served, and nothing from the bad session is stored.
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../src/protocol/codec.js';
import { CloseCode } from '../src/protocol/close-codes.js';
import type { AckMessage, ErrorMessage, ServerMessage } from '../src/protocol/messages.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const FAR = 9_999_999_999_999;

describe('sensor gateway protocol v1', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ maxFrameBytes: 64 * 1024, livenessTimeoutS: 1.5, pingIntervalS: 0.25 });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function enroll(encoding: 'json' | 'msgpack' = 'json', hostname = 'proto-host'): Promise<{ client: ProtocolClient; sid: string; secret: string }> {
    const client = new ProtocolClient(t.url, encoding);
    await client.hello({ installation_key: t.installationKey }, { host: { hostname } });
    const welcome = await client.welcome();
    expect(welcome.identity).toBeDefined();
    return { client, sid: welcome.sid, secret: welcome.identity!.secret };
  }

  async function storedTypes(sid: string): Promise<string[]> {
    const page = await t.server.store.queryTimeline({ oid: t.oid, sid, start: 0, end: FAR, limit: 100_000 });
    return page.events.map((e) => (JSON.parse(e) as { routing: { event_type: string } }).routing.event_type);
  }

  /** A healthy sensor that must keep working while others misbehave. */
  async function healthyRoundTrip(): Promise<void> {
    const { client, sid } = await enroll('json', 'healthy');
    client.sendEvents(1, telemetry(3));
    await client.waitForAck(1);
    expect((await storedTypes(sid)).filter((x) => x === 'NEW_PROCESS')).toHaveLength(3);
    client.close();
    await client.closed;
  }

  it('enrolls with an installation key: welcome carries sid, per-sensor secret and session parameters', async () => {
    const { client, sid } = await enroll();
    const welcome = await client.welcome();
    expect(welcome).toMatchObject({ version: 1, oid: t.oid, sid, ack_seq: 0, max_frame_bytes: 64 * 1024 });
    expect(welcome.identity!.secret.length).toBeGreaterThan(20);
    client.close();
    await client.closed;
  });

  it('a sensor offering several protocol versions gets the one the cloud speaks (version 1)', async () => {
    for (const versions of [[1, 99], [99, 1]]) {
      const client = new ProtocolClient(t.url);
      await client.hello({ installation_key: t.installationKey }, { versions });
      const welcome = await client.welcome();
      expect(welcome.version, `versions ${versions.join(',')}`).toBe(1);
      // The negotiated session works: a batch is stored and acknowledged.
      client.sendEvents(1, telemetry(1));
      await client.waitForAck(1);
      client.close();
      await client.closed;
    }
  });

  it('acknowledges batches cumulatively only after they are stored, in JSON and in msgpack', async () => {
    for (const encoding of ['json', 'msgpack'] as const) {
      const { client, sid } = await enroll(encoding);
      for (let seq = 1; seq <= 5; seq++) client.sendEvents(seq, telemetry(10));
      await client.waitForAck(5);
      const acks = client.messages.filter((m): m is AckMessage => m.t === 'ack').map((m) => m.seq);
      expect(acks).toEqual([...acks].sort((a, b) => a - b));
      expect((await storedTypes(sid)).filter((x) => x === 'NEW_PROCESS')).toHaveLength(50);
      client.close();
      await client.closed;
    }
  });

  it('a resend after reconnecting is acknowledged but stored once (same stream)', async () => {
    const { client, sid, secret } = await enroll();
    const streamId = crypto.randomUUID();
    client.close();
    await client.closed;
    const a = new ProtocolClient(t.url);
    await a.hello({ sid, secret }, { streamId });
    expect((await a.welcome()).ack_seq).toBe(0);
    a.sendEvents(1, telemetry(4, 'FIRST'));
    a.sendEvents(2, telemetry(4, 'SECOND'));
    await a.waitForAck(2);
    a.close();
    await a.closed;
    const b = new ProtocolClient(t.url);
    await b.hello({ sid, secret }, { streamId });
    expect((await b.welcome()).ack_seq).toBe(2);
    b.sendEvents(2, telemetry(4, 'SECOND'));
    b.sendEvents(3, telemetry(4, 'THIRD'));
    await b.waitForAck(3);
    const types = await storedTypes(sid);
    expect(types.filter((x) => x === 'SECOND')).toHaveLength(4);
    expect(types.filter((x) => x === 'THIRD')).toHaveLength(4);
    b.close();
    await b.closed;
  });

  it('a second session of the same sensor (same host) replaces the first, which is closed with 4009', async () => {
    const { client, sid, secret } = await enroll();
    const second = new ProtocolClient(t.url);
    await second.hello({ sid, secret }, { host: { hostname: 'proto-host' } });
    await second.welcome();
    expect((await client.closed).code).toBe(CloseCode.replaced);
    expect(t.server.registry.isOnline(sid)).toBe(true);
    second.close();
    await second.closed;
    await waitFor(() => !t.server.registry.isOnline(sid), { message: 'sensor offline' });
  });

  it('a silent session (no pongs) is closed by the liveness timeout and DISCONNECTED says "timeout"', async () => {
    const { client, sid } = await enroll();
    client.ws.pause(); // stops reading: no pongs go back
    await waitFor(async () => (await storedTypes(sid)).includes('DISCONNECTED'), { timeoutMs: 6000, message: 'DISCONNECTED by timeout' });
    const page = await t.server.store.queryTimeline({ oid: t.oid, sid, start: 0, end: FAR, limit: 100, eventType: 'DISCONNECTED' });
    expect(JSON.parse(page.events[0]!).event.reason).toBe('timeout');
    client.ws.terminate();
  });

  it('a sensor that still reads but stops answering pings is told why: close 4008 "liveness timeout"', async () => {
    // A raw client with automatic pongs turned off: it reads every frame but shows no sign of life.
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/sensor`, { autoPong: false });
    const received: ServerMessage[] = [];
    ws.on('message', (data, isBinary) => received.push(decodeFrame(data as Buffer, isBinary).message as ServerMessage));
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(encodeFrame({ t: 'hello', versions: [1], auth: { installation_key: t.installationKey }, host: ProtocolClient.host({ hostname: 'deaf-host' }), stream_id: randomUUID() }, 'json'));
    const welcome = await waitFor(() => received.find((m) => m.t === 'welcome'), { message: 'welcome' });
    const sid = (welcome as { sid: string }).sid;
    const end = await closed;
    expect(end.code).toBe(CloseCode.livenessTimeout);
    expect(end.reason).toContain('liveness timeout');
    expect(received.find((m): m is ErrorMessage => m.t === 'error')).toMatchObject({ code: CloseCode.livenessTimeout });
    await waitFor(async () => (await storedTypes(sid)).includes('DISCONNECTED'), { message: 'DISCONNECTED after the liveness close' });
    const page = await t.server.store.queryTimeline({ oid: t.oid, sid, start: 0, end: FAR, limit: 100, eventType: 'DISCONNECTED' });
    expect(JSON.parse(page.events[0]!).event.reason).toBe('timeout');
  });

  describe('bad input closes only the offending session, with a reason, storing nothing from it', () => {
    /** One well-behaved sensor kept connected through every bad-input case below. */
    let steady: { client: ProtocolClient; sid: string };
    let steadySeq = 0;

    beforeAll(async () => {
      steady = await enroll('json', 'steady-host');
    });

    // After each misbehaving session, the steady one is still open and still gets its batches stored and acknowledged.
    afterEach(async () => {
      expect(steady.client.ws.readyState, 'the steady session was closed').toBe(WebSocket.OPEN);
      const before = (await storedTypes(steady.sid)).filter((x) => x === 'STEADY').length;
      steadySeq++;
      steady.client.sendEvents(steadySeq, telemetry(2, 'STEADY'));
      await steady.client.waitForAck(steadySeq);
      expect((await storedTypes(steady.sid)).filter((x) => x === 'STEADY')).toHaveLength(before + 2);
      expect(t.server.registry.isOnline(steady.sid)).toBe(true);
    });

    afterAll(async () => {
      steady?.client.close();
      await steady?.client.closed;
    });

    async function expectClosed(client: ProtocolClient, code: number, reasonPart: string): Promise<void> {
      const closed = await client.closed;
      expect(closed.code).toBe(code);
      const error = client.messages.find((m): m is ErrorMessage => m.t === 'error');
      const text = `${closed.reason} ${error?.message ?? ''}`;
      expect(text).toContain(reasonPart);
    }

    it('malformed JSON', async () => {
      const c = new ProtocolClient(t.url);
      await c.opened;
      c.sendRaw('{"t":"hello", oops');
      await expectClosed(c, CloseCode.badMessage, 'malformed JSON');
      await healthyRoundTrip();
    });

    it('malformed msgpack', async () => {
      const c = new ProtocolClient(t.url);
      await c.opened;
      c.sendRaw(Buffer.from([0xc1, 0xc1, 0xc1]));
      await expectClosed(c, CloseCode.badMessage, 'malformed msgpack');
    });

    it('an oversize frame', async () => {
      const { client, sid } = await enroll();
      client.sendEvents(1, [{ event_type: 'BIG', event_time: Date.now(), event: { blob: 'x'.repeat(70 * 1024) } }]);
      expect((await client.closed).code).toBe(CloseCode.tooBig);
      expect(await storedTypes(sid)).not.toContain('BIG');
      await healthyRoundTrip();
    });

    it('an unknown message type', async () => {
      const { client, sid } = await enroll();
      client.send({ t: 'telepathy', seq: 1, events: telemetry(2, 'TELEPATHY') });
      await expectClosed(client, CloseCode.unknownType, 'unknown message type');
      // Once the session's end is recorded, its timeline holds only what the cloud itself produced.
      await waitFor(async () => (await storedTypes(sid)).includes('DISCONNECTED'), { message: 'the session end to be recorded' });
      expect((await storedTypes(sid)).sort()).toEqual(['CONNECTED', 'DISCONNECTED', 'enrollment']);
    });

    it('a wrong protocol version', async () => {
      const c = new ProtocolClient(t.url);
      await c.hello({ installation_key: t.installationKey }, { versions: [7, 8] });
      await expectClosed(c, CloseCode.unsupportedVersion, 'unsupported protocol version');
      await healthyRoundTrip();
    });

    it('an invalid installation key enrolls nothing', async () => {
      const before = (await t.server.store.listSensors(t.oid, { limit: 1000 })).sensors.length;
      const c = new ProtocolClient(t.url);
      const [iid] = t.installationKey.split('.');
      await c.hello({ installation_key: `${iid}.not-the-right-secret-at-all` });
      await expectClosed(c, CloseCode.unauthorized, 'invalid installation key');
      const c2 = new ProtocolClient(t.url);
      await c2.hello({ installation_key: 'garbage' });
      await expectClosed(c2, CloseCode.unauthorized, 'invalid installation key');
      expect((await t.server.store.listSensors(t.oid, { limit: 1000 })).sensors.length).toBe(before);
    });

    it('a wrong sensor secret', async () => {
      const { client, sid } = await enroll();
      client.close();
      await client.closed;
      await waitFor(async () => (await storedTypes(sid)).includes('DISCONNECTED'), { message: 'the first session to be recorded as ended' });
      const countBefore = (await storedTypes(sid)).length;
      const c = new ProtocolClient(t.url);
      await c.hello({ sid, secret: 'definitely-not-the-secret' });
      await expectClosed(c, CloseCode.unauthorized, 'wrong sensor secret');
      // Commits are in submission order: once another sensor's later batch is acknowledged, anything
      // the rejected session could have produced would be stored already.
      const other = await enroll('json', 'other-host');
      other.client.sendEvents(1, telemetry(1));
      await other.client.waitForAck(1);
      other.client.close();
      expect(await storedTypes(sid)).toHaveLength(countBefore);
    });

    it('events before hello', async () => {
      const c = new ProtocolClient(t.url);
      await c.opened;
      c.sendEvents(1, telemetry(1));
      await expectClosed(c, CloseCode.protocolViolation, 'before welcome');
    });

    it('a hello that does not match the schema names the field', async () => {
      const c = new ProtocolClient(t.url);
      await c.opened;
      c.send({ t: 'hello', versions: [1], auth: { installation_key: t.installationKey }, stream_id: crypto.randomUUID(), host: { ...ProtocolClient.host(), plat: 'linux' } });
      await expectClosed(c, CloseCode.badMessage, 'host.plat');
    });

    it('a batch with a cloud-only event type or an event_time in seconds is refused whole', async () => {
      const { client, sid } = await enroll();
      client.sendEvents(1, [...telemetry(2, 'OK_BEFORE'), { event_type: 'enrollment', event_time: Date.now(), event: {} }]);
      await expectClosed(client, CloseCode.badMessage, 'produced by the cloud');
      expect(await storedTypes(sid)).not.toContain('OK_BEFORE');
      const again = await enroll();
      again.client.sendEvents(1, [{ event_type: 'NEW_PROCESS', event_time: Math.floor(Date.now() / 1000), event: {} }]);
      await expectClosed(again.client, CloseCode.badMessage, 'event_time: must be Unix milliseconds');
    });

    it('a known sensor event with a bad payload names the field', async () => {
      const { client, sid } = await enroll();
      client.sendEvents(1, [{ event_type: 'STARTING_UP', event_time: Date.now(), event: { STARTING_UP: { ts: 'yesterday' } } }]);
      await expectClosed(client, CloseCode.badMessage, 'STARTING_UP.ts');
      expect(await storedTypes(sid)).not.toContain('STARTING_UP');
    });

    it('a sequence number going backwards within a session', async () => {
      const { client } = await enroll();
      client.sendEvents(5, telemetry(1));
      await client.waitForAck(5);
      client.sendEvents(3, telemetry(1));
      await expectClosed(client, CloseCode.badSequence, 'not after 5');
    });

    it('no hello within the hello timeout', async () => {
      const quick = await startTestServer({ helloTimeoutS: 0.3 });
      try {
        const c = new ProtocolClient(quick.url);
        await c.opened;
        await expectClosed(c, CloseCode.protocolViolation, 'no hello');
      } finally {
        await quick.close();
      }
    });
  });

  it('counts sessions, events, acks and protocol errors in /metrics', async () => {
    async function counters(): Promise<{ sessions: number; events: number; acks: number; malformed: number }> {
      const text = await (await fetch(`${t.url}/metrics`)).text();
      const value = (series: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? 0 : Number(line.slice(series.length + 1));
      };
      return {
        sessions: value('picket_sensor_sessions_opened_total'),
        events: value('picket_events_received_total'),
        acks: value('picket_acks_sent_total'),
        malformed: value('picket_protocol_errors_total{reason="malformed"}'),
      };
    }
    const before = await counters();
    const { client } = await enroll();
    for (let seq = 1; seq <= 3; seq++) {
      client.sendEvents(seq, telemetry(4));
      await client.waitForAck(seq);
    }
    client.close();
    await client.closed;
    const bad = new ProtocolClient(t.url);
    await bad.opened;
    bad.sendRaw('{"t": nope');
    await bad.closed;
    const after = await waitFor(async () => {
      const now = await counters();
      return now.malformed > before.malformed ? now : undefined;
    }, { message: 'the malformed frame to be counted' });
    expect(after.sessions - before.sessions).toBe(1);
    expect(after.events - before.events).toBe(12);
    expect(after.acks - before.acks).toBe(3);
    expect(after.malformed - before.malformed).toBe(1);
  });
});
