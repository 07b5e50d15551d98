// Connections: how many sensors one node holds with heartbeats flowing, the server memory each costs,
// and how long a reconnect storm (every session dropped at once) takes to absorb. Baseline: a bare `ws`
// server holding the same number of connections with the same heartbeat, measured in the same run.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { BenchContext } from './lib/context.js';
import { startPicket, simulate } from './lib/processes.js';
import { checkTarget, round, type BenchResult } from './lib/result.js';

const PING_S = 5;

export async function connectionsBenchmark(ctx: BenchContext): Promise<Omit<BenchResult, 'command' | 'commit' | 'date' | 'quick' | 'machine' | 'duration_s'>> {
  const n = ctx.quick ? 1000 : 19_000;
  const holdS = ctx.quick ? 10 : 30;

  ctx.log(`baseline: bare ws server, ${n} connections, ping every ${PING_S} s`);
  const bare = await bareBaseline(n, holdS, ctx);
  ctx.log(`  ${round(bare.perConnKiB)} KiB per connection, storm absorbed in ${bare.stormMs} ms`);

  const server = await startPicket({ PICKET_PING_INTERVAL: String(PING_S), PICKET_LIVENESS_TIMEOUT: String(PING_S * 6) });
  try {
    const rss = async (): Promise<number> => (await server.metrics()).get('picket_process_resident_memory_bytes') ?? NaN;
    const heap = async (): Promise<number> => (await server.metrics()).get('picket_nodejs_heap_size_used_bytes') ?? NaN;
    const rss0 = await rss();
    const heap0 = await heap();
    ctx.log(`picket: ${n} simulated sensors enroll, hold ${holdS} s with heartbeats and light telemetry, then a reconnect storm`);
    let maxSessions = 0;
    const samples: Array<{ rss: number; heap: number; sessions: number }> = [];
    // A few sessions may drop and come back during the hold on a loaded machine (a missed heartbeat):
    // samples are taken while at most 0.5 % of the sensors are away, each divided by the sessions up then.
    const quorum = n - Math.ceil(n * 0.005);
    let allOnlineAt = 0;
    const running = simulate(server, ['--sensors', String(n), '--eps', String(Math.max(1, Math.round(n / 5))), '--duration', String(holdS), '--connect-rate', '1000', '--connect-concurrency', '1000', '--max-inflight', '2', '--hostname-prefix', 'conn', '--storm'], ctx.progress);
    let done = false;
    void running.finally(() => (done = true));
    while (!done) {
      const m = await server.metrics();
      const sessions = m.get('picket_sensor_sessions') ?? 0;
      maxSessions = Math.max(maxSessions, sessions);
      if (sessions >= n && !allOnlineAt) allOnlineAt = Date.now();
      // Memory is sampled every half second through the hold, once every sensor has been online for 5 s
      // (heartbeats and telemetry flowing) and until a second before the storm: a single sample lands
      // anywhere in V8's collection cycle and swung by a quarter between runs of the same code.
      const held = allOnlineAt ? Date.now() - allOnlineAt : -1;
      if (sessions >= quorum && held >= 5000 && held <= (holdS - 1) * 1000) {
        samples.push({ rss: m.get('picket_process_resident_memory_bytes') ?? NaN, heap: m.get('picket_nodejs_heap_size_used_bytes') ?? NaN, sessions });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const summary = await running;
    /** KiB per connected sensor of each sample's growth over `base`. */
    const kib = (pick: (s: (typeof samples)[number]) => number, base: number): number[] => samples.map((s) => (pick(s) - base) / s.sessions / 1024);
    const perSensorKiB = samples.length ? median(kib((s) => s.rss, rss0)) : null;
    const peakPerSensorKiB = samples.length ? Math.max(...kib((s) => s.rss, rss0)) : null;
    const heapPerSensorKiB = samples.length ? median(kib((s) => s.heap, heap0)) : null;
    const fewestSessions = samples.length ? Math.min(...samples.map((s) => s.sessions)) : null;
    ctx.log(`  max sessions ${maxSessions}, ${perSensorKiB === null ? '?' : round(perSensorKiB)} KiB per sensor (median of ${samples.length} samples, at least ${fewestSessions ?? '?'} sessions up; peak ${peakPerSensorKiB === null ? '?' : round(peakPerSensorKiB)}), storm ${summary.reconnect_storm_ms} ms`);
    const result = {
      name: 'connections',
      title: 'Connections',
      status: 'measured' as const,
      figures: {
        sensors_connected: { value: maxSessions, unit: 'sensors', description: `most sessions the server reported at once (of ${n} simulated)` },
        memory_per_sensor_kib: { value: perSensorKiB === null ? null : round(perSensorKiB), unit: 'KiB', description: `server resident memory growth per connected sensor, median of ${samples.length} samples through the hold (each divided by the sessions up then; at least ${fewestSessions ?? '?'})` },
        memory_peak_per_sensor_kib: { value: peakPerSensorKiB === null ? null : round(peakPerSensorKiB), unit: 'KiB', description: 'same, the highest sample' },
        heap_per_sensor_kib: { value: heapPerSensorKiB === null ? null : round(heapPerSensorKiB), unit: 'KiB', description: 'server JS heap growth per connected sensor (used, garbage included), median' },
        enroll_all_s: { value: summary.all_online_ms === null ? null : round(summary.all_online_ms / 1000, 1), unit: 's', description: 'time to enroll and connect every sensor at up to 1,000 new sessions/s' },
        reconnect_storm_s: { value: summary.reconnect_storm_ms === null ? null : round(summary.reconnect_storm_ms / 1000, 1), unit: 's', description: 'all sessions dropped at once, time until every sensor is online again' },
        connect_p99_ms: { value: summary.connect_ms.p99, unit: 'ms', description: 'hello → welcome, p99 (enrollment and reconnects)' },
        connect_errors: { value: summary.connect_errors, unit: '', description: 'failed connection attempts (retried)' },
      },
      baseline: {
        description: `a bare ws server (no protocol, no store) holding ${n} connections with a ping every ${PING_S} s, and the same reconnect storm`,
        figures: {
          bare_memory_per_connection_kib: { value: round(bare.perConnKiB), unit: 'KiB', description: 'resident memory growth per connection' },
          bare_reconnect_storm_s: { value: round(bare.stormMs / 1000, 1), unit: 's', description: 'reconnect storm absorbed' },
        },
      },
      ratios: {
        memory_vs_bare_ws: { value: perSensorKiB === null ? null : round(perSensorKiB / bare.perConnKiB), unit: '', description: 'Picket memory per sensor / bare ws memory per connection' },
        storm_vs_bare_ws: { value: summary.reconnect_storm_ms === null ? null : round(summary.reconnect_storm_ms / bare.stormMs), unit: '', description: 'Picket storm time / bare ws storm time' },
      },
      targets: [] as BenchResult['targets'],
      limits: [
        'The per-process open-file limit (20,000 on this machine) bounds one node below 20,000 sockets; the simulator holds its client ends in a separate process.',
        'A reconnect storm is bound by authentication (one indexed sensor read and a hash per hello) and by writing CONNECTED/DISCONNECTED for every sensor.',
      ],
      notes: [`Heartbeats: server ping every ${PING_S} s; each sensor also sends light telemetry (1 event / 5 s).`],
    };
    result.targets = [
      checkTarget('19,000 sensors connected', 'sensors_connected', '>=', 19_000, result),
      checkTarget('≤ 16 KiB server memory per sensor', 'memory_per_sensor_kib', '<=', 16, result),
      checkTarget('reconnect storm absorbed in < 60 s', 'reconnect_storm_s', '<=', 60, result),
    ];
    return result;
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function bareBaseline(n: number, holdS: number, ctx: BenchContext): Promise<{ perConnKiB: number; stormMs: number }> {
  const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib/bare-ws-server.js');
  const proc = spawn(process.execPath, [entry], { env: { ...process.env, PING_MS: String(PING_S * 1000) }, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const nextLine = (): Promise<string> => new Promise((r) => waiting.push(r));
  const mem = async (): Promise<{ rss: number; clients: number }> => {
    const p = nextLine();
    proc.stdin!.write('mem\n');
    return JSON.parse(await p) as { rss: number; clients: number };
  };
  try {
    const port = Number((await nextLine()).split(' ')[1]);
    const url = `ws://127.0.0.1:${port}/`;
    const rss0 = (await mem()).rss;
    const clients: WebSocket[] = new Array(n);
    await connectAll(url, clients, 1000);
    ctx.progress(`bare ws: ${n} connected, holding`);
    // Sampled like Picket's: every half second through the hold, after the first 5 s; the median.
    const samples: number[] = [];
    const holdStart = Date.now();
    while (Date.now() - holdStart < holdS * 1000) {
      if (Date.now() - holdStart >= 5000) samples.push((await mem()).rss);
      await new Promise((r) => setTimeout(r, 500));
    }
    const rss1 = median(samples);
    for (const c of clients) c.terminate();
    while ((await mem()).clients > 0) await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await connectAll(url, clients, 1000);
    const stormMs = Date.now() - t0;
    for (const c of clients) c.terminate();
    return { perConnKiB: (rss1 - rss0) / n / 1024, stormMs };
  } finally {
    proc.stdin!.write('exit\n');
    await new Promise((r) => proc.once('exit', r));
  }
}

async function connectAll(url: string, into: WebSocket[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < into.length) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          into[i] = await new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(url, { perMessageDeflate: false });
            ws.once('open', () => resolve(ws));
            ws.once('error', reject);
          });
          into[i]!.on('error', () => undefined);
          break;
        } catch (err) {
          if (attempt > 20) throw err;
          await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, into.length) }, worker));
}
