// Frame size on /sensor (docs/protocol.md §1): a frame over max_frame_bytes gets an `error` saying so, in
// the session's encoding, then a close with 1009; nothing of it is stored and other sensors carry on. Only
// a frame more than twice the limit is cut by the WebSocket layer without being read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../src/protocol/close-codes.js';
import type { ErrorMessage } from '../src/protocol/messages.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { startTestServer, type TestServer } from './harness/server.js';

const LIMIT = 64 * 1024;
const FAR = 9_999_999_999_999;

describe('sensor protocol v1: frames over max_frame_bytes', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ maxFrameBytes: LIMIT });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function enroll(encoding: 'json' | 'msgpack'): Promise<{ client: ProtocolClient; sid: string }> {
    const client = new ProtocolClient(t.url, encoding);
    await client.hello({ installation_key: t.installationKey });
    const welcome = await client.welcome();
    expect(welcome.max_frame_bytes).toBe(LIMIT);
    return { client, sid: welcome.sid };
  }

  async function storedTypes(sid: string): Promise<string[]> {
    const page = await t.server.store.queryTimeline({ oid: t.oid, sid, start: 0, end: FAR, limit: 1000 });
    return page.events.map((e) => (JSON.parse(e) as { routing: { event_type: string } }).routing.event_type);
  }

  function errors(client: ProtocolClient): ErrorMessage[] {
    return client.messages.filter((m): m is ErrorMessage => m.t === 'error');
  }

  for (const encoding of ['json', 'msgpack'] as const) {
    it(`an oversize ${encoding} batch is refused with an error naming the limit, then 1009; the sensor's earlier batch stays stored`, async () => {
      const { client, sid } = await enroll(encoding);
      client.sendEvents(1, telemetry(2, 'SMALL_ONE'));
      await client.waitForAck(1);
      client.sendEvents(2, [{ event_type: 'BIG', event_time: Date.now(), event: { blob: 'x'.repeat(70 * 1024) } }]);
      const closed = await client.closed;
      expect(closed.code).toBe(CloseCode.tooBig);
      expect(errors(client)).toEqual([{ t: 'error', code: CloseCode.tooBig, message: expect.stringContaining(`exceeds max_frame_bytes ${LIMIT}`) }]);
      const types = await storedTypes(sid);
      expect(types.filter((x) => x === 'SMALL_ONE')).toHaveLength(2);
      expect(types).not.toContain('BIG');

      // Another sensor is served as before.
      const other = await enroll('json');
      other.client.sendEvents(1, telemetry(3, 'STILL_FINE'));
      await other.client.waitForAck(1);
      other.client.close();
    });
  }

  it('an oversize hello gets the error too, in JSON (no encoding is chosen yet), and enrolls nothing', async () => {
    const before = (await t.server.store.listSensors(t.oid, { limit: 1000 })).sensors.length;
    const client = new ProtocolClient(t.url, 'json');
    await client.hello({ installation_key: t.installationKey }, { host: { hostname: 'h'.repeat(70 * 1024) } });
    expect((await client.closed).code).toBe(CloseCode.tooBig);
    expect(errors(client)).toEqual([{ t: 'error', code: CloseCode.tooBig, message: expect.stringContaining('exceeds max_frame_bytes') }]);
    expect((await t.server.store.listSensors(t.oid, { limit: 1000 })).sensors.length).toBe(before);
  });

  it('a frame more than twice the limit is cut by the WebSocket layer with 1009, unread and without an error', async () => {
    const { client, sid } = await enroll('json');
    client.sendEvents(1, [{ event_type: 'HUGE', event_time: Date.now(), event: { blob: 'x'.repeat(2 * LIMIT + 1024) } }]);
    expect((await client.closed).code).toBe(CloseCode.tooBig);
    expect(errors(client)).toEqual([]);
    expect(await storedTypes(sid)).not.toContain('HUGE');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/picket_protocol_errors_total\{reason="frame_too_big"\} 4/);
  });
});
