// Tasking round trip: from the task API call (`POST /v1/{sid}`) to its result event being stored, at
// 1,000 tasks per second spread over connected simulated sensors (200 in quick mode), after a warm-up at
// the same rate that is not recorded (the server's first requests compile its hot paths). Each simulated
// sensor answers at once (CLOUD_NOTIFICATION and RECEIPT in one batch); the round trip ends when the cloud
// acknowledges that batch, i.e. the result event is durable. Baseline, in the same run: the same task
// message echoed over one WebSocket by a bare `ws` server (no API, no store), and two durable one-row
// SQLite commits in a row on the same disk (the fsyncs every durable round trip pays).
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { WebSocket, WebSocketServer } from 'ws';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { LatencyRecorder } from '../src/simulator/latency-recorder.js';
import type { BenchContext } from './lib/context.js';
import { startPicket } from './lib/processes.js';
import { checkTarget, round, type BenchResult } from './lib/result.js';

const RATE = 1000;

export async function taskingBenchmark(ctx: BenchContext): Promise<Omit<BenchResult, 'command' | 'commit' | 'date' | 'quick' | 'machine' | 'duration_s'>> {
  const sensors = ctx.quick ? 200 : 1000;
  const durationS = ctx.quick ? 3 : 10;
  const total = RATE * durationS;
  const warmupS = ctx.quick ? 1 : 2;
  const warmup = RATE * warmupS;

  const baseline = await echoBaseline(total);
  ctx.log(`  baseline echo p50 ${baseline.p50} ms p99 ${baseline.p99} ms`);
  const floor = await twoCommitsBaseline(total);
  ctx.log(`  baseline two durable commits p50 ${floor.p50} ms p99 ${floor.p99} ms`);

  const server = await startPicket({});
  const started = new Map<string, number>();
  const early = new Map<string, number>();
  /** Task ids of the warm-up: answered like the rest, not recorded. */
  const unrecorded = new Set<string>();
  const roundTrip = new LatencyRecorder();
  const apiAnswer = new LatencyRecorder();
  let answered = 0;
  const sim = new FleetSimulator({
    url: server.url, installationKey: server.installationKey, sensors, encoding: 'msgpack', connectRate: 2000, connectConcurrency: 200,
    maxInflight: 64, hostnamePrefix: 'bench-task', seed: 11,
    onTaskAnswerStored: (taskId) => {
      const now = performance.now();
      const t0 = started.get(taskId);
      // The answer can be stored before the API call that created the task has returned.
      if (t0 === undefined) {
        early.set(taskId, now);
        return;
      }
      started.delete(taskId);
      if (unrecorded.delete(taskId)) return;
      roundTrip.record(now - t0);
      answered++;
    },
  });
  try {
    const connected = await sim.connectAll(120_000);
    if (connected < sensors) throw new Error(`only ${connected} of ${sensors} simulated sensors connected`);
    const sids = sim.sensors.map((s) => s.sid!);
    ctx.log(`  ${sensors} simulated sensors connected; ${warmup} tasks of warm-up, then ${total} tasks at ${RATE}/s`);
    const headers = { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' };
    // node:http with keep-alive rather than fetch: the load generator shares the cores with the server,
    // and fetch costs about twice the CPU per call.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const failures: string[] = [];
    const inflight = new Set<Promise<void>>();
    // This process's own event loop through the recorded run: every round trip is timed here, so a
    // stall of the load generator (its 1,000 sensors, the HTTP client, its collections) counts in it.
    const generatorLag = monitorEventLoopDelay({ resolution: 1 });
    let before = await server.metrics();
    let t0 = performance.now();
    for (let i = -warmup; i < total; i++) {
      const recorded = i >= 0;
      if (i === 0) {
        // Warm-up over: the recorded run starts from the warm-up's answers being in.
        await Promise.all(inflight);
        const deadline = Date.now() + 30_000;
        while (unrecorded.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        before = await server.metrics();
        generatorLag.enable();
        t0 = performance.now();
      }
      // Paced against the clock: task i leaves at t0 + i / RATE.
      const due = t0 + ((recorded ? i : i + warmup) * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const sid = sids[(i + warmup) % sids.length]!;
      const sentAt = performance.now();
      const p = post(agent, `${server.url}/v1/${sid}`, headers, JSON.stringify({ tasks: ['selftest'], investigation_id: `bench-${i}` }))
        .then((res) => {
          if (recorded) apiAnswer.record(performance.now() - sentAt);
          const body = JSON.parse(res.body) as { tasks?: Array<{ task_id: string }> };
          const id = body.tasks?.[0]?.task_id;
          if (res.status !== 200 || !id) {
            failures.push(`HTTP ${res.status}`);
            return;
          }
          const storedAt = early.get(id);
          if (storedAt !== undefined) {
            early.delete(id);
            if (!recorded) return;
            roundTrip.record(storedAt - sentAt);
            answered++;
          } else {
            started.set(id, sentAt);
            if (!recorded) unrecorded.add(id);
          }
        })
        .catch((err: unknown) => void failures.push((err as Error).message));
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (i % 1000 === 0) ctx.progress(i < 0 ? `warm-up task ${i + warmup}/${warmup}` : `task ${i}/${total}`);
    }
    await Promise.all(inflight);
    generatorLag.disable();
    agent.destroy();
    const sendS = (performance.now() - t0) / 1000;
    const deadline = Date.now() + 60_000;
    while (answered + failures.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const r = roundTrip.summary();
    const a = apiAnswer.summary();
    ctx.log(`  round trip p50 ${r.p50} ms p90 ${r.p90} ms p99 ${r.p99} ms max ${r.max} ms; ${answered}/${total} answered; ${failures.length} API failures`);
    ctx.log(`  API answer p50 ${a.p50} ms p99 ${a.p99} ms`);
    const after = await server.metrics();
    const commits = (after.get('picket_store_commit_seconds_count') ?? 0) - (before.get('picket_store_commit_seconds_count') ?? 0);
    const commitS = (after.get('picket_store_commit_seconds_sum') ?? 0) - (before.get('picket_store_commit_seconds_sum') ?? 0);
    const lagP99 = after.get('picket_nodejs_eventloop_lag_p99_seconds') ?? NaN;
    /** Group commits of the run that took longer than `le` seconds (from the histogram's buckets). */
    const commitsOver = (le: string): number => {
      const key = `picket_store_commit_seconds_bucket{le="${le}"}`;
      return commits - ((after.get(key) ?? 0) - (before.get(key) ?? 0));
    };
    const slow10 = commitsOver('0.01');
    const slow25 = commitsOver('0.025');
    // The server's CPU (every thread: main, append, checkpoint, V8's helpers) per recorded task: what the
    // hot path costs, which moves far less with the machine's load than the latencies do.
    const cpuS = (m: Map<string, number>): number => (m.get('picket_process_cpu_seconds_total') ?? NaN);
    const cpuPerTaskMs = round(((cpuS(after) - cpuS(before)) * 1000) / total, 3);
    const genLagP99 = generatorLag.percentile(99) / 1e6;
    const genLagMax = generatorLag.max / 1e6;
    ctx.log(`  group commits over 10 ms: ${slow10}, over 25 ms: ${slow25}; server CPU ${cpuPerTaskMs} ms per task`);
    ctx.log(`  ${commits} group commits, mean ${round((commitS * 1000) / Math.max(commits, 1))} ms; event loop lag p99 ${round(lagP99 * 1000)} ms; load generator's p99 ${round(genLagP99)} ms, max ${round(genLagMax)} ms`);
    const result = {
      name: 'tasking',
      title: 'Tasking round trip',
      status: 'measured' as const,
      figures: {
        sensors: { value: sensors, unit: 'sensors', description: 'connected simulated sensors the tasks are spread over' },
        tasks: { value: total, unit: 'tasks', description: `selftest tasks sent at ${RATE}/s for ${durationS} s and recorded, after ${warmup} tasks of warm-up at the same rate (${warmupS} s, not recorded)` },
        achieved_rate: { value: Math.round(total / sendS), unit: 'tasks/s', description: 'rate the API calls actually left at' },
        answered: { value: answered, unit: 'tasks', description: 'tasks whose result event was stored' },
        round_trip_p50_ms: { value: r.p50, unit: 'ms', description: 'API call → task delivered → CLOUD_NOTIFICATION + RECEIPT stored (acknowledged), p50' },
        round_trip_p90_ms: { value: r.p90, unit: 'ms', description: 'same, p90' },
        round_trip_max_ms: { value: r.max, unit: 'ms', description: 'same, slowest task' },
        round_trip_p99_ms: { value: r.p99, unit: 'ms', description: 'same, p99' },
        api_answer_p50_ms: { value: a.p50, unit: 'ms', description: 'API call → HTTP answer (task stored and sent to the sensor), p50' },
        api_answer_p99_ms: { value: a.p99, unit: 'ms', description: 'same, p99' },
        server_cpu_ms_per_task: { value: cpuPerTaskMs, unit: 'ms', description: 'server process CPU (all its threads) through the recorded run, per task' },
        group_commits: { value: commits, unit: 'commits', description: 'store group commits during the run (each one fsync of the WAL)' },
        commit_mean_ms: { value: round((commitS * 1000) / Math.max(commits, 1)), unit: 'ms', description: 'mean time from a group commit\'s start to its end (inserts, WAL write, fsync, checkpoints)' },
        commits_over_10_ms: { value: slow10, unit: 'commits', description: 'group commits of the recorded run that took longer than 10 ms (each holds every task and answer in it)' },
        commits_over_25_ms: { value: slow25, unit: 'commits', description: 'same, longer than 25 ms' },
        event_loop_lag_p99_ms: { value: round(lagP99 * 1000), unit: 'ms', description: 'server event loop delay, p99 (prom-client, since the server started)' },
        generator_loop_lag_p99_ms: { value: round(genLagP99), unit: 'ms', description: 'the load generator\'s own event loop delay through the recorded run, p99 (where every round trip is timed)' },
        generator_loop_lag_max_ms: { value: round(genLagMax), unit: 'ms', description: 'same, longest' },
      },
      baseline: {
        description: 'the same task message echoed by a bare ws server over one WebSocket at the same rate (no HTTP, no store), in this process',
        figures: {
          echo_p50_ms: { value: baseline.p50, unit: 'ms', description: 'echo round trip, p50' },
          echo_p99_ms: { value: baseline.p99, unit: 'ms', description: 'echo round trip, p99' },
          two_commits_p50_ms: { value: floor.p50, unit: 'ms', description: 'two one-row SQLite commits in a row (WAL, synchronous=FULL: two fsyncs) on the same disk, paced at the same rate, p50: the durable part of every round trip' },
          two_commits_p99_ms: { value: floor.p99, unit: 'ms', description: 'same, p99' },
        },
      },
      ratios: {
        round_trip_vs_echo_p99: { value: round(r.p99 / Math.max(baseline.p99, 0.01)), unit: '', description: 'task round trip p99 / bare echo p99' },
        round_trip_vs_two_commits_p99: { value: round(r.p99 / Math.max(floor.p99, 0.01)), unit: '', description: 'task round trip p99 / two durable commits p99' },
      },
      targets: [] as BenchResult['targets'],
      limits: [
        'Each round trip includes the HTTP API call (auth, task row and SELF_TEST written and the task marked "sent" in one group commit), delivery over the sensor socket, and one group commit of CLOUD_NOTIFICATION + the answer + the task state before the ack: two durable commits on the path of every task. The HTTP answer also waits for the call\'s audit record (not on the round trip).',
        'Not the disk: two one-row commits straight into SQLite on the same disk take the baseline\'s two_commits figures (p50 about 0.3 ms, p99 about 1.3 ms on a quiet day). Measured inside the server with temporary timers (1,000 tasks/s, 2026-12-07, before 756d740): the task row\'s commit as the API handler sees it p50 2.4 / p99 18-27 ms, of which the hand-over to the append thread and back is p50 1.3 / p99 7.5 ms and the thread\'s transaction p50 0.7 / p99 5 ms; the answer\'s commit p50 2.6 / p99 13-23 ms. The rest is waiting for an event loop: the server\'s main thread (HTTP, 1,000 sessions, the writer) and the load generator (1,000 simulated sensors, fetch) share this machine\'s 2 cores with the append and checkpoint threads. Handing the thread 8 groups at once instead of 2, or starting a commit without waiting a turn of the loop, changed nothing measurable.',
        'Where the tail was (2026-12-07, per-thread scheduler statistics and WAL frame counts logged around every commit of the append thread): the commits over 25 ms were each the one that started the WAL over from about 40,000 frames and shortened the file to the 64 MiB journal_size_limit, 13 ms of CPU and about 20 ms blocked; with the limit above that size (756d740) they are gone and the p99 went from 27-43 to 14-21 ms in alternating runs. What is left lines up with stretches where the server\'s main thread and its store threads stall together for 10-13 ms (no collection among them: waiting for one of the 2 cores, which the load generator shares), a major collection on the main thread (7-9 ms, one or two per run) and checkpoint passes of 8-14 ms. Not the load generator (its own event loop delay is in generator_loop_lag_*: p99 about 2 ms); giving the checkpoint thread the lowest CPU priority changed nothing measurable.',
        'Runs of the same code on this machine range from p50 2 ms / p99 29 ms to p50 600 ms / p99 2 s as the host\'s disk and CPU vary (the parse ceiling of the ingest benchmark moves by up to 1.7× between runs minutes apart).',
      ],
      notes: failures.length > 0 ? [`${failures.length} API calls failed, e.g. ${failures[0]}`] : [],
    };
    result.targets = [checkTarget('task round trip p99 < 10 ms at 1,000 tasks/s', 'round_trip_p99_ms', '<=', 10, result)];
    return result;
  } finally {
    await sim.close();
    await server.stop();
  }
}

/** One POST over a keep-alive agent; resolves with the status and the body. */
function post(agent: http.Agent, url: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The floor any durable task round trip pays on this disk: the task row committed before it is sent, the
 * answer committed before it is acknowledged. Two one-row commits in a row into a SQLite file in WAL mode
 * with synchronous=FULL (one fsync each), paced at RATE per second, in this process.
 */
async function twoCommitsBaseline(count: number): Promise<{ p50: number; p99: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-bench-fsync-'));
  const db = new Database(path.join(dir, 'floor.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const rec = new LatencyRecorder();
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = t0 + (i * 1000) / RATE - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const start = performance.now();
      insert.run(`task ${i}`);
      insert.run(`answer ${i}`);
      rec.record(performance.now() - start);
    }
    const s = rec.summary();
    return { p50: s.p50, p99: s.p99 };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Echo round trips of a task-sized message over one WebSocket, paced at RATE per second. */
async function echoBaseline(count: number): Promise<{ p50: number; p99: number }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const { port } = wss.address() as { port: number };
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  await new Promise<void>((r, j) => {
    ws.once('open', () => r());
    ws.once('error', j);
  });
  const rec = new LatencyRecorder();
  const sent = new Map<number, number>();
  let received = 0;
  ws.on('message', (data: Buffer) => {
    const i = (JSON.parse(data.toString()) as { i: number }).i;
    rec.record(performance.now() - sent.get(i)!);
    received++;
  });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sent.set(i, performance.now());
    ws.send(JSON.stringify({ i, t: 'task', task_id: '6f0c1f7e-3b1a-4c53-9e1d-2b6f0a3c9d11', sid: '8fc370e6-699a-4985-8e75-c1316b725570', command: 'selftest', investigation_id: `bench-${i}`, expiry: 1763800000 }));
  }
  while (received < count) await new Promise((r) => setTimeout(r, 10));
  ws.close();
  wss.close();
  const s = rec.summary();
  return { p50: s.p50, p99: s.p99 };
}
