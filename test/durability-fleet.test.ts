// "SIGKILL the server in the middle of a 100,000-event stream from 20 sensors; after a restart (same data
// directory, same port) and reconnects, the store holds every event exactly once." And its corollary: an
// acknowledgement means durable, even if the sensors never come back.
//
// Everything is real: the server runs from dist/ as its own process with PICKET_SQLITE_SYNC=full, the 20
// sensors are the load simulator's SimulatedSensors (the real protocol over real sockets: numbered batches,
// cumulative acks, reconnect with backoff, resend of unacknowledged batches with their original seq and
// stream_id after dropping those at or below welcome.ack_seq), and everything is read back through the
// REST API (GET /v1/insight/{oid}/{sid} with event_type, 2,000 per page: about a second for 100,000
// events, so there is no need to open the SQLite file). The organization's sensor list is checked to be
// exactly the 20 sensors, so the sum of their timelines is every event of the test's type in the store.
//
// Every event carries its identity {s: sensor index, n: 0..4999} and every event has the same
// event_time, so a timeline (ordered by event_time, then by insertion) is in pure storage order and
// "n = 0, 1, 2, ... 4999" checks presence, uniqueness and per-sensor order at once.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { LossyRelay } from './harness/fleet-proxy.js';
import { startServerProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

const SENSORS = 20;
const PER_SENSOR = 5000;
const TOTAL = SENSORS * PER_SENSOR;
/** Events per batch: 50 batches per sensor, so a kill lands between many batch boundaries. */
const BATCH = 100;
/** Unacknowledged batches per sensor: up to 16,000 events in flight fleet-wide when the server dies. */
const MAX_INFLIGHT = 8;
const EVENT_TYPE = 'FLEET_DURABILITY';
const SERVER_ENV = { PICKET_SQLITE_SYNC: 'full' };

interface Identity {
  s: number;
  n: number;
}

interface Fleet {
  sim: FleetSimulator;
  /** Per sensor: how many of its events were handed to it (n = 0 .. sent-1). */
  sent: number[];
  /** Ends the load loop. */
  stop(): Promise<void>;
}

/** 20 simulated sensors, each streaming its 5,000 identified events as fast as acknowledgements allow. */
async function startFleet(server: ServerProcess, prefix: string, via?: LossyRelay): Promise<Fleet> {
  const eventTime = Date.now();
  const sent = new Array<number>(SENSORS).fill(0);
  const sim = new FleetSimulator({
    url: via?.url ?? server.url,
    installationKey: server.credentials.installation_key,
    sensors: SENSORS,
    encoding: 'msgpack',
    connectRate: 1000,
    connectConcurrency: SENSORS,
    maxInflight: MAX_INFLIGHT,
    hostnamePrefix: prefix,
    seed: 1,
    batchSource: (sensor, max) => {
      const from = sent[sensor.index]!;
      const count = Math.min(max, PER_SENSOR - from);
      sent[sensor.index] = from + count;
      return Array.from({ length: count }, (_, k): SensorEvent => ({ event_type: EVENT_TYPE, event_time: eventTime, event: { s: sensor.index, n: from + k } }));
    },
  });
  expect(await sim.connectAll(20_000)).toBe(SENSORS);
  const abort = new AbortController();
  // Saturating load (eps 0) bounded by the batch source; the duration is only a backstop, the test stops it.
  const loading = sim.runLoad({ eps: 0, durationS: 120, batchEvents: BATCH, tickMs: 10, warmupS: 0, progressIntervalMs: 60_000, signal: abort.signal });
  return {
    sim,
    sent,
    async stop() {
      abort.abort();
      await loading;
    },
  };
}

const acked = (sim: FleetSimulator): number => sim.snapshot('running').eventsAcked;

/**
 * Waits until `fraction` of all events are acknowledged, runs `beforeKill`, SIGKILLs the server, and waits
 * until every sensor saw its session end.
 */
async function killMidStream(server: ServerProcess, fleet: Fleet, fraction: number, beforeKill?: () => Promise<void>): Promise<void> {
  await waitFor(() => acked(fleet.sim) >= fraction * TOTAL, { timeoutMs: 15_000, intervalMs: 2, message: `${fraction * 100}% of the events acknowledged` });
  await beforeKill?.();
  server.kill('SIGKILL');
  expect((await server.exited).signal).toBe('SIGKILL');
  await waitFor(() => fleet.sim.onlineCount === 0, { timeoutMs: 10_000, message: 'every sensor to see its session end' });
}

interface StoredEvent {
  routing: { sid: string; event_type: string };
  event: Identity;
}

/** Every stored event of the test's type on one sensor's timeline, through the API, 2,000 per page. */
async function readTimeline(server: ServerProcess, sid: string): Promise<StoredEvent[]> {
  const api = apiClient(server.url, server.credentials.api_key);
  const out: StoredEvent[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const route: string = `/v1/insight/${server.credentials.oid}/${sid}?start=0&end=9999999999&event_type=${EVENT_TYPE}&limit=2000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await api<{ events: StoredEvent[]; next_cursor: string | null }>('GET', route);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    out.push(...res.body.events);
    cursor = res.body.next_cursor;
    expect(++pages).toBeLessThan(100);
  } while (cursor);
  return out;
}

/** The fleet's sensors as the cloud lists them: exactly ours (no extra enrollment), with their state. */
async function listSensors(server: ServerProcess): Promise<Array<{ sid: string; hostname: string; state: string }>> {
  const api = apiClient(server.url, server.credentials.api_key);
  const res = await api<{ sensors: Array<{ sid: string; hostname: string; state: string }> }>('GET', `/v1/sensors/${server.credentials.oid}?limit=1000`);
  expect(res.status).toBe(200);
  return res.body.sensors;
}

/** A counter of the server's Prometheus metrics. */
async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} not found`);
  return Number(m[1]);
}

/** Duplicated and missing n (in 0..expected-1) of one sensor's stored events; `order` is false when n is not 0, 1, 2, ... */
function audit(events: StoredEvent[], index: number, sid: string, expected: number) {
  const seen = new Map<number, number>();
  let foreign = 0;
  for (const e of events) {
    if (e.event.s !== index || e.routing.sid !== sid || e.routing.event_type !== EVENT_TYPE) foreign++;
    seen.set(e.event.n, (seen.get(e.event.n) ?? 0) + 1);
  }
  const duplicated = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  const missing: number[] = [];
  for (let n = 0; n < expected; n++) if (!seen.has(n)) missing.push(n);
  const unexpected = [...seen.keys()].filter((n) => !Number.isInteger(n) || n < 0 || n >= expected);
  const order = events.every((e, i) => e.event.n === i);
  return { stored: events.length, foreign, duplicated: duplicated.slice(0, 10), missing: missing.slice(0, 10), missingCount: missing.length, unexpected: unexpected.slice(0, 10), order };
}

/** Reads every stored event back and checks count and identity: exactly 100,000, each once, in order per sensor. */
async function expectEveryEventOnce(server: ServerProcess, sids: string[]): Promise<void> {
  let total = 0;
  for (const [index, sid] of sids.entries()) {
    const events = await readTimeline(server, sid);
    total += events.length;
    expect(audit(events, index, sid, PER_SENSOR), `sensor ${index} (${sid})`).toEqual({
      stored: PER_SENSOR, foreign: 0, duplicated: [], missing: [], missingCount: 0, unexpected: [], order: true,
    });
  }
  expect(total).toBe(TOTAL);
}

describe('durability of a 100,000-event fleet stream across a server SIGKILL', () => {
  const servers: ServerProcess[] = [];
  const dataDirs = new Set<string>();
  const fleets: Fleet[] = [];
  const relays: LossyRelay[] = [];
  afterAll(async () => {
    for (const f of fleets) {
      await f.stop();
      await f.sim.close();
    }
    for (const r of relays) await r.close();
    for (const s of servers) {
      s.kill('SIGKILL');
      await s.exited;
    }
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
  });

  it('stores every event exactly once, in order, after a restart and the sensors\' reconnects and resends', async () => {
    const startedAt = Date.now();
    const first = await startServerProcess({ env: SERVER_ENV });
    servers.push(first);
    dataDirs.add(first.dataDir);
    // An output is attached: after the kill and restart it must hold every event once too.
    const added = await apiClient(first.url, first.credentials.api_key)('POST', `/v1/outputs/${first.credentials.oid}`, {
      name: 'archive', module: 'file', type: 'event', dest_path: 'archive.jsonl', event_white_list: EVENT_TYPE, is_no_routing: true,
    });
    expect(added.status).toBe(200);
    const fleet = await startFleet(first, 'fleet-kill');
    fleets.push(fleet);
    const { sim } = fleet;

    await killMidStream(first, fleet, 0.3);
    const ackedAtKill = acked(sim);
    const sentAtKill = fleet.sent.reduce((a, b) => a + b, 0);
    const pendingBatchesAtKill = sim.sensors.reduce((n, s) => n + s.inflight, 0);
    // The kill landed mid-stream: a good part acknowledged, a good part not even sent, batches in flight.
    expect(ackedAtKill).toBeGreaterThanOrEqual(0.2 * TOTAL);
    expect(ackedAtKill).toBeLessThanOrEqual(0.6 * TOTAL);
    expect(sentAtKill).toBeLessThan(TOTAL);
    expect(pendingBatchesAtKill).toBeGreaterThan(0);
    const sids = sim.sensors.map((s) => s.sid!);

    // Same data directory, same port: the sensors find it again by themselves.
    const second = await startServerProcess({ dataDir: first.dataDir, port: first.port, env: SERVER_ENV });
    servers.push(second);
    await waitFor(() => acked(sim) === TOTAL && fleet.sent.every((n) => n === PER_SENSOR), { timeoutMs: 20_000, message: 'every event acknowledged after the restart' });
    await fleet.stop();
    await sim.close();

    const summary = sim.summary();
    expect(summary.events_sent).toBe(TOTAL);
    expect(summary.events_acked).toBe(TOTAL);
    expect(summary.online_at_end).toBe(0);
    // Same sensors, no new enrollment (an identity lost in the reconnect would show as a new sid).
    expect(sim.sensors.map((s) => s.sid)).toEqual(sids);
    const listed = await listSensors(second);
    expect(listed.map((s) => s.sid).sort()).toEqual([...sids].sort());
    // Unacknowledged batches were resent after the reconnect; none of them was one the cloud already had
    // (the simulator dropped those at or below welcome.ack_seq), and none broke the sequence (4006).
    const resent = summary.batches_resent;
    expect(resent).toBeGreaterThan(0);
    expect(resent).toBeLessThanOrEqual(pendingBatchesAtKill);
    expect(await metric(second, 'picket_batches_duplicate_total')).toBe(0);
    expect(Object.keys(summary.errors).filter((k) => /\b40\d\d\b/.test(k))).toEqual([]);

    await expectEveryEventOnce(second, sids);

    // The output saw every event exactly once, each sensor's in order.
    const archive = path.join(first.dataDir, 'outputs', 'archive.jsonl');
    const readArchive = (): Identity[] => (existsSync(archive) ? readFileSync(archive, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Identity) : []);
    await waitFor(() => readArchive().length >= TOTAL, { timeoutMs: 20_000, message: 'the output caught up' });
    const delivered = readArchive();
    expect(delivered).toHaveLength(TOTAL);
    expect(new Set(delivered.map((e) => `${e.s}/${e.n}`)).size).toBe(TOTAL);
    for (let index = 0; index < SENSORS; index++) {
      expect(delivered.filter((e) => e.s === index).map((e) => e.n), `sensor ${index} in the output`).toEqual(Array.from({ length: PER_SENSOR }, (_, n) => n));
    }

    second.kill('SIGTERM');
    await second.exited;
    console.info(
      `[durability-fleet] killed at ${ackedAtKill}/${TOTAL} acknowledged, ${sentAtKill} sent, ${pendingBatchesAtKill} batches in flight; ` +
        `${resent} resent after the restart, ${pendingBatchesAtKill - resent} dropped as already stored (welcome.ack_seq); ` +
        `${Date.now() - startedAt} ms`,
    );
  }, 40_000);

  it('keeps every acknowledged event even if the sensors never come back', async () => {
    const first = await startServerProcess({ env: SERVER_ENV });
    servers.push(first);
    dataDirs.add(first.dataDir);
    const fleet = await startFleet(first, 'fleet-gone');
    fleets.push(fleet);
    const { sim } = fleet;

    await killMidStream(first, fleet, 0.3);
    // The sensors are gone for good: no reconnect, nothing resent.
    await fleet.stop();
    await sim.close();
    const sids = sim.sensors.map((s) => s.sid!);
    // What each sensor had seen acknowledged: its events up to ackedUpTo[i] (batches go out in order and
    // acks are cumulative, so the acknowledged events are a prefix of n).
    const ackedUpTo = sim.sensors.map((s) => fleet.sent[s.index]! - s.unackedEvents);
    const ackedTotal = ackedUpTo.reduce((a, b) => a + b, 0);
    expect(ackedTotal).toBe(acked(sim));
    expect(ackedTotal).toBeGreaterThanOrEqual(0.2 * TOTAL);
    expect(ackedTotal).toBeLessThan(TOTAL);

    const second = await startServerProcess({ dataDir: first.dataDir, port: first.port, env: SERVER_ENV });
    servers.push(second);
    const listed = await listSensors(second);
    expect(listed.map((s) => s.sid).sort()).toEqual([...sids].sort());
    expect(listed.every((s) => s.state === 'offline')).toBe(true);

    let storedTotal = 0;
    for (const [index, sid] of sids.entries()) {
      const events = await readTimeline(second, sid);
      const stored = events.length;
      storedTotal += stored;
      // Every acknowledged event is there (plus possibly batches stored whose ack the kill swallowed),
      // each once, in order, and only whole batches: nothing beyond what the sensor sent.
      expect(stored, `sensor ${index}: stored ${stored}, acknowledged ${ackedUpTo[index]}`).toBeGreaterThanOrEqual(ackedUpTo[index]!);
      expect(stored).toBeLessThanOrEqual(fleet.sent[index]!);
      expect(stored % BATCH, `sensor ${index}: a partial batch is stored`).toBe(0);
      expect(audit(events, index, sid, stored), `sensor ${index} (${sid})`).toEqual({
        stored, foreign: 0, duplicated: [], missing: [], missingCount: 0, unexpected: [], order: true,
      });
    }
    expect(storedTotal).toBeGreaterThanOrEqual(ackedTotal);
    // Nobody came back while we read: what was checked is what the crash left.
    expect((await listSensors(second)).every((s) => s.state === 'offline')).toBe(true);
    second.kill('SIGTERM');
    await second.exited;
    console.info(`[durability-fleet] sensors gone: ${ackedTotal} acknowledged before the kill, ${storedTotal} stored after the restart`);
  }, 40_000);

  it('drops the batches whose acks the crash swallowed (welcome.ack_seq) and resends none of them', async () => {
    // The sensors reach the server through a relay. Mid-stream it stops passing the server's bytes: the
    // server goes on storing and acknowledging what the sensors sent, and none of those acks arrives.
    // Once the server has acknowledged every batch sent, it is killed. Every batch the sensors still hold
    // is then stored, the welcome after the restart says so (ack_seq), and a correct sensor drops them all
    // and resends none; a resent one would be recognised by the server and counted as a duplicate.
    const first = await startServerProcess({ env: SERVER_ENV });
    servers.push(first);
    dataDirs.add(first.dataDir);
    const relay = await LossyRelay.start(first.port);
    relays.push(relay);
    const fleet = await startFleet(first, 'fleet-lost-acks', relay);
    fleets.push(fleet);
    const { sim } = fleet;

    await killMidStream(first, fleet, 0.3, async () => {
      expect(relay.hold()).toBe(SENSORS);
      // The server acknowledges every batch it stores, one ack each (sensor-session.ts), so this is "every
      // batch the fleet sent is stored". No window can reopen: no ack reaches a sensor any more.
      await waitFor(async () => (await metric(first, 'picket_acks_sent_total')) >= sim.summary().batches_sent, {
        timeoutMs: 10_000, message: 'the server to store and acknowledge every batch sent',
      });
      // Still the first sessions: none timed out and reconnected around the relay's hold.
      expect(relay.connections).toBe(SENSORS);
    });
    const ackedAtKill = acked(sim);
    const pendingBatchesAtKill = sim.sensors.reduce((n, s) => n + s.inflight, 0);
    expect(pendingBatchesAtKill).toBeGreaterThan(0);
    expect(ackedAtKill).toBeLessThanOrEqual(0.6 * TOTAL);
    const sids = sim.sensors.map((s) => s.sid!);

    const second = await startServerProcess({ dataDir: first.dataDir, port: first.port, env: SERVER_ENV });
    servers.push(second);
    await waitFor(() => acked(sim) === TOTAL && fleet.sent.every((n) => n === PER_SENSOR), { timeoutMs: 20_000, message: 'every event acknowledged after the restart' });
    await fleet.stop();
    await sim.close();

    const summary = sim.summary();
    expect(summary.events_sent).toBe(TOTAL);
    expect(summary.events_acked).toBe(TOTAL);
    expect(sim.sensors.map((s) => s.sid)).toEqual(sids);
    expect(summary.batches_resent).toBe(0);
    expect(await metric(second, 'picket_batches_duplicate_total')).toBe(0);
    expect(Object.keys(summary.errors).filter((k) => /\b40\d\d\b/.test(k))).toEqual([]);
    await expectEveryEventOnce(second, sids);

    second.kill('SIGTERM');
    await second.exited;
    console.info(`[durability-fleet] lost acks: killed at ${ackedAtKill}/${TOTAL} acknowledged as seen by the sensors; ${pendingBatchesAtKill} stored batches still held were dropped on the welcome, none resent`);
  }, 40_000);
});
