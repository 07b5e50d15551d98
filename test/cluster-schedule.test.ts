// Cluster mode, schedule events (issue 9): three real nodes share one clock offset (the debug clock file,
// PICKET_DEBUG_CLOCK_FILE), placed just before a 30-minute boundary. The leader alone publishes the ticks
// to the JetStream bus; a live stream on every node sees each period's 30m_per_org exactly once, and
// still exactly once for the next period after the leader was SIGKILLed and another node took over.
// Skipped with a message without PostgreSQL and NATS, never with CI=true.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { validateEvent } from '../src/catalogue/validate.js';
import { POSTGRES_URL } from './harness/postgres.js';
import { clusterUnavailable, TestCluster, type NodeProcess } from './harness/cluster.js';
import { startSensorProcess, type ManagedProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

const PERIOD_MS = 30 * 60_000;

type Tick = { routing: { oid: string; event_type: string; event_time: number }; event: Record<string, unknown> };

async function readLines(res: Response, into: Array<Record<string, unknown>>): Promise<void> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        into.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    }
  } catch {
    // aborted, or the node died
  }
}

describe.skipIf(clusterUnavailable !== undefined)('cluster schedule events', () => {
  const cluster = new TestCluster({ PICKET_LIVE_KEEPALIVE: '60' });
  const aborts: AbortController[] = [];
  let sensor: ManagedProcess | undefined;

  afterAll(async () => {
    for (const a of aborts) a.abort();
    sensor?.kill('SIGKILL');
    await cluster.close();
  }, 60_000);

  /** Puts every node's clock `beforeMs` before the next 30-minute boundary; returns that boundary. */
  function approachBoundary(beforeMs: number, after = 0): number {
    const boundary = Math.max(Math.ceil((Date.now() + 1) / PERIOD_MS) * PERIOD_MS, after + PERIOD_MS);
    cluster.setClockOffset(boundary - beforeMs - Date.now());
    return boundary;
  }

  it('fires once per period across three nodes, and still once after the leader is killed', async () => {
    await cluster.start('a');
    await Promise.all([cluster.start('b'), cluster.start('c')]);
    const { oid, installation_key } = cluster.credentials;
    // A sensor online on a node that does not lead: the organization is eligible for *_per_org, and the
    // leader must collect that node's counters for the sensor's *_per_sensor runtime metrics.
    const firstLeader = await waitFor(() => cluster.leader(), { message: 'the leader' });
    const follower = [...cluster.nodes.values()].find((n) => n !== firstLeader)!;
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-sched-'));
    sensor = startSensorProcess({ url: follower.url, key: installation_key, stateDir });
    await waitFor(async () => (await cluster.api<{ usage: number }>('a', 'GET', `/v1/quota_usage/${oid}`)).body.usage === 1, { message: 'the sensor online' });
    // The sensor writes its identity file once it has read the welcome, a moment after the cloud counts it online.
    const identityFile = path.join(stateDir, 'identity.json');
    const sid = await waitFor(() => (existsSync(identityFile) ? (JSON.parse(readFileSync(identityFile, 'utf8')) as { sid: string }).sid : undefined), { message: 'the identity file' });
    // Something received from it on its node: the answer to a selftest.
    const posted = await cluster.api<{ tasks: Array<{ task_id: string }> }>('a', 'POST', `/v1/${sid}`, { tasks: ['selftest'] });
    await waitFor(async () => (await cluster.api<{ state: string }>('b', 'GET', `/v1/tasks/${posted.body.tasks[0]!.task_id}`)).body.state === 'answered', { message: 'the selftest answered' });

    const streams = new Map<NodeProcess, Array<Record<string, unknown>>>();
    for (const node of cluster.nodes.values()) {
      const abort = new AbortController();
      aborts.push(abort);
      const res = await fetch(`${node.url}/v1/stream/${oid}?type=schedule`, { method: 'POST', signal: abort.signal, headers: { authorization: `Bearer ${cluster.credentials.api_key}` } });
      expect(res.status).toBe(200);
      const lines: Array<Record<string, unknown>> = [];
      void readLines(res, lines);
      streams.set(node, lines);
    }
    // The leader's first check only records the periods under way (a fresh store fires nothing); then
    // every clock moves to just before the next boundary.
    await waitFor(async () => (await query(cluster.schema, 'SELECT count(*)::int AS n FROM schedule_marks'))[0]!.n > 0, { message: 'the first schedule check' });
    const first = approachBoundary(4000);
    const perOrg = (lines: Array<Record<string, unknown>>, period: number): Tick[] =>
      (lines.filter((l) => l.routing) as unknown as Tick[]).filter((t) => t.routing.event_type === '30m_per_org' && t.routing.event_time >= period && t.routing.event_time < period + PERIOD_MS);

    // The boundary passes: each node's live stream sees the period's tick once.
    await waitFor(() => [...streams.values()].every((lines) => perOrg(lines, first).length >= 1), { timeoutMs: 30_000, message: 'the first 30m_per_org on every node' });
    // Three more schedule checks of every node (one a second) add nothing.
    await new Promise((r) => setTimeout(r, 3000));
    for (const lines of streams.values()) {
      const ticks = perOrg(lines, first);
      expect(ticks).toHaveLength(1);
      expect(ticks[0]!.routing.oid).toBe(oid);
      expect(validateEvent(ticks[0]!, { produced: true }).errors).toEqual([]);
      const perSensor = (lines.filter((l) => l.routing) as unknown as Tick[]).filter((t) => t.routing.event_type === '30m_per_sensor' && (t.routing as { sid?: string }).sid === sid && t.routing.event_time >= first);
      expect(perSensor).toHaveLength(1);
      const mtd = (perSensor[0]!.event as { runtime_mtd: { mtd: { bytes_recv: number; conn_at: number; eps_in: number } } }).runtime_mtd.mtd;
      expect(mtd.conn_at).toBeGreaterThan(0);
      expect(mtd.bytes_recv, 'bytes received on the follower, collected by the leader').toBeGreaterThan(0);
    }

    const leader = await waitFor(() => cluster.leader(), { message: 'the leader' });
    leader.kill('SIGKILL');
    await leader.exited;
    const survivors = [...cluster.nodes.values()].filter((n) => n !== leader);
    await waitFor(() => cluster.leader(), { timeoutMs: 20_000, message: 'a new leader' });

    const second = approachBoundary(4000, first);
    await waitFor(() => survivors.every((n) => perOrg(streams.get(n)!, second).length >= 1), { timeoutMs: 30_000, message: 'the next period\'s 30m_per_org on the surviving nodes' });
    await new Promise((r) => setTimeout(r, 3000));
    for (const n of survivors) expect(perOrg(streams.get(n)!, second)).toHaveLength(1);
  }, 120_000);
});

async function query(schema: string, sql: string): Promise<Array<{ n: number }>> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema}"`);
    return (await client.query<{ n: number }>(sql)).rows;
  } finally {
    await client.end();
  }
}
