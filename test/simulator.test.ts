// The load simulator against a real server: every sensor enrolls, every sent event is acknowledged and
// stored exactly once, and a reconnect storm brings every sensor back under its own identity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetSimulator, gatewayUrl } from '../src/simulator/fleet-simulator.js';
import { EventMix } from '../src/simulator/event-mix.js';
import { runCli } from './harness/processes.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';

describe('picket simulate', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('derives the gateway URL from any form of cloud URL', () => {
    expect(gatewayUrl('http://127.0.0.1:4830')).toBe('ws://127.0.0.1:4830/sensor');
    expect(gatewayUrl('https://picket.example.com/')).toBe('wss://picket.example.com/sensor');
    expect(gatewayUrl('ws://h:1/sensor')).toBe('ws://h:1/sensor');
  });

  it('builds a deterministic event mix of realistic sizes', () => {
    const a = new EventMix(7, 256);
    const b = new EventMix(7, 256);
    expect(a.batch(50, 1).map((e) => JSON.stringify(e))).toEqual(b.batch(50, 1).map((e) => JSON.stringify(e)));
    expect(a.meanEventBytes).toBeGreaterThan(150);
    expect(a.meanEventBytes).toBeLessThan(1500);
    const types = new Set(new EventMix(1, 2048).batch(2048, 1).map((e) => e.event_type));
    expect(types.size).toBeGreaterThanOrEqual(8);
  });

  it('spreads paced sensors over the tick and stamps each batch when it is sent, as independent sensors send', async () => {
    const mix = new EventMix(5, 256);
    const stamps: number[] = [];
    const sim = new FleetSimulator({
      url: server.url, installationKey: server.installationKey, sensors: 20, encoding: 'msgpack', connectRate: 200, connectConcurrency: 20, maxInflight: 4, hostnamePrefix: 'spread', seed: 4,
      batchSource: (_sensor, max, now) => (stamps.push(now), mix.batch(max, now)),
    });
    expect(await sim.connectAll(20_000)).toBe(20);
    await sim.runLoad({ eps: 2000, durationS: 2, batchEvents: 100, tickMs: 50, warmupS: 0, progressIntervalMs: 1000 });
    expect(await sim.drain(10_000)).toBe(true);
    await sim.close();
    // 40 ticks of 50 ms: sent all at once per tick, the batches would carry about 40 distinct times; in
    // 10 slots a tick, about 400.
    expect(stamps.length).toBeGreaterThan(200);
    expect(new Set(stamps).size).toBeGreaterThan(120);
  });

  it('enrolls a fleet, paces events, and every event is acknowledged and stored once', async () => {
    const sim = new FleetSimulator({ url: server.url, installationKey: server.installationKey, sensors: 20, encoding: 'msgpack', connectRate: 200, connectConcurrency: 20, maxInflight: 4, hostnamePrefix: 'paced', seed: 3 });
    expect(await sim.connectAll(20_000)).toBe(20);
    await sim.runLoad({ eps: 2000, durationS: 2, batchEvents: 100, tickMs: 50, warmupS: 0, progressIntervalMs: 1000 });
    expect(await sim.drain(10_000)).toBe(true);
    const s = sim.summary();
    expect(s.connected).toBe(20);
    expect(s.enrolled).toBe(20);
    expect(s.events_sent).toBeGreaterThan(2000);
    expect(s.events_acked).toBe(s.events_sent);
    expect(s.ack_latency_ms.count).toBe(s.events_acked);

    // Stored exactly once: count the telemetry on each sensor's timeline.
    let stored = 0;
    for (const sensor of sim.sensors) {
      let cursor: string | undefined;
      do {
        const page = await server.server.store.queryTimeline({ oid: server.oid, sid: sensor.sid!, start: 0, end: Date.now() + 1000, limit: 1000, cursor });
        stored += page.events.filter((e) => !/"event_type":"(CONNECTED|enrollment|DISCONNECTED)"/.test(e)).length;
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    }
    expect(stored).toBe(s.events_sent);

    // A reconnect storm: every session dropped at once, all back under the same sids, no new enrollment.
    const sids = sim.sensors.map((x) => x.sid);
    const ms = await sim.reconnectStorm(20_000);
    expect(ms).not.toBeNull();
    expect(sim.onlineCount).toBe(20);
    expect(sim.sensors.map((x) => x.sid)).toEqual(sids);
    const api = apiClient(server.url, server.apiKey);
    const list = await api<{ sensors: unknown[] }>('GET', `/v1/sensors/${server.oid}?limit=1000`);
    expect(list.body.sensors.filter((x) => JSON.stringify(x).includes('paced-'))).toHaveLength(20);
    await sim.close();
    expect(sim.onlineCount).toBe(0);
  });

  it('saturates with --eps 0 and reports a JSON summary from the CLI', async () => {
    const r = await runCli(['simulate', '--url', server.url, '--key', server.installationKey, '--sensors', '5', '--eps', '0', '--duration', '1', '--hostname-prefix', 'cli', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { connected: number; events_sent: number; events_acked: number; ack_latency_ms: { p99: number } };
    expect(summary.connected).toBe(5);
    expect(summary.events_sent).toBeGreaterThan(0);
    expect(summary.events_acked).toBe(summary.events_sent);
    expect(summary.ack_latency_ms.p99).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/online 5\/5/);
  });

  it('fails clearly without a cloud to talk to', async () => {
    const r = await runCli(['simulate', '--data', '/nonexistent', '--sensors', '1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--url and --key/);
  });
});
