// Query: one sensor's one-hour timeline from a store holding 10 million events (600,000 in quick
// mode), through the API (`GET /v1/insight/{oid}/{sid}`), p50/p99. Baseline: the same reads made
// directly on the store in this process (no HTTP, no auth), in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import os from 'node:os';
import path from 'node:path';
import { newId } from '../src/domain/ids.js';
import { RoutingTemplate } from '../src/pipeline/envelope.js';
import { hashSecret, newSecret } from '../src/services/secrets.js';
import { EventMix, seededRandom } from '../src/simulator/event-mix.js';
import { LatencyRecorder } from '../src/simulator/latency-recorder.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { StoredEvent } from '../src/store/store.js';
import type { BenchContext } from './lib/context.js';
import { startPicket } from './lib/processes.js';
import { checkTarget, round, type BenchResult } from './lib/result.js';

const HOUR = 3_600_000;
const WINDOW_H = 24;

export async function queryBenchmark(ctx: BenchContext): Promise<Omit<BenchResult, 'command' | 'commit' | 'date' | 'quick' | 'machine' | 'duration_s'>> {
  const totalEvents = ctx.quick ? 600_000 : 10_000_000;
  const sensors = ctx.quick ? 100 : 1000;
  const queries = ctx.quick ? 200 : 1000;

  // A fresh cloud gives the organization and installation key; then fill its store directly.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'picket-bench-query-'));
  const first = await startPicket({}, dataDir);
  const { oid, apiKey } = first;
  await first.stop();
  const dbPath = path.join(dataDir, 'picket.db');
  const end = Date.now();
  const start = end - WINDOW_H * HOUR;
  const t0 = Date.now();
  // A bulk load: the event indexes are dropped first and built once at the end (the same definitions,
  // read from the schema), instead of being maintained row by row for 10 million rows.
  const indexes = withDatabase(dbPath, (db) => {
    const defs = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL").all() as Array<{ name: string; sql: string }>;
    for (const d of defs) db.exec(`DROP INDEX "${d.name}"`);
    return defs;
  });
  const sids = await populate(dbPath, oid, sensors, totalEvents, start, end, ctx);
  ctx.progress(`building ${indexes.length} indexes`);
  withDatabase(dbPath, (db) => { for (const d of indexes) db.exec(d.sql); });
  const populateS = (Date.now() - t0) / 1000;
  ctx.log(`  stored ${totalEvents} events for ${sensors} sensors and built their indexes in ${round(populateS, 1)} s`);

  const server = await startPicket({}, dataDir);
  const reader = SqliteStore.open({ path: dbPath, synchronous: 'normal' });
  try {
    const r = seededRandom(42);
    const pick = () => {
      const sid = sids[Math.floor(r() * sids.length)]!;
      const from = start + Math.floor(r() * (WINDOW_H - 1) * HOUR);
      return { sid, from, to: from + HOUR };
    };
    // The API and the baseline read different sensor-hours (of 24,000), so each read meets data nobody
    // read before: both are as cold (or as warm) as the page cache makes them.
    const plan = Array.from({ length: queries }, () => ({ api: pick(), direct: pick() }));
    const api = new LatencyRecorder();
    const apiTyped = new LatencyRecorder();
    const direct = new LatencyRecorder();
    let returned = 0;
    let directBytes = 0;
    ctx.log(`${queries} one-hour timeline reads through the API, each followed by a read of another sensor-hour directly on the store`);
    for (const [i, { api: q, direct: dq }] of plan.entries()) {
      const url = `${server.url}/v1/insight/${oid}/${q.sid}?start=${Math.floor(q.from / 1000)}&end=${Math.floor(q.to / 1000)}&limit=10000`;
      const ta = performance.now();
      const res = await fetch(url, { headers: { authorization: `Bearer ${apiKey}` } });
      const body = (await res.json()) as { events?: unknown[] };
      api.record(performance.now() - ta);
      if (!res.ok || !Array.isArray(body.events)) throw new Error(`insight query failed: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      returned += body.events.length;
      const tt = performance.now();
      const typed = await fetch(`${url}&event_type=DNS_REQUEST`, { headers: { authorization: `Bearer ${apiKey}` } });
      await typed.arrayBuffer();
      apiTyped.record(performance.now() - tt);
      const td = performance.now();
      const page = await reader.queryTimeline({ oid, sid: dq.sid, start: Math.floor(dq.from / 1000) * 1000, end: Math.floor(dq.to / 1000) * 1000 + 999, limit: 10000 });
      directBytes += `[${page.events.join(',')}]`.length;
      direct.record(performance.now() - td);
      if (i % 50 === 0) ctx.progress(`query ${i}/${queries}`);
    }
    const a = api.summary();
    const at = apiTyped.summary();
    const d = direct.summary();
    if (directBytes === 0) throw new Error('direct reads returned nothing');
    ctx.log(`  API p50 ${a.p50} ms p99 ${a.p99} ms; direct p50 ${d.p50} ms p99 ${d.p99} ms; ${Math.round(returned / queries)} events per hour`);
    const result = {
      name: 'query',
      title: 'Timeline query',
      status: 'measured' as const,
      figures: {
        events_in_store: { value: totalEvents, unit: 'events', description: `${sensors} sensors, ${totalEvents / sensors} events each over ${WINDOW_H} h` },
        events_per_query: { value: Math.round(returned / queries), unit: 'events', description: 'mean events in one sensor-hour (all returned in one page)' },
        query_p50_ms: { value: a.p50, unit: 'ms', description: 'GET /v1/insight one-hour timeline, p50 (HTTP, auth, JSON body)' },
        query_p99_ms: { value: a.p99, unit: 'ms', description: 'GET /v1/insight one-hour timeline, p99' },
        query_event_type_p99_ms: { value: at.p99, unit: 'ms', description: 'same with event_type=DNS_REQUEST, p99' },
        populate_eps: { value: Math.round(totalEvents / populateS), unit: 'events/s', description: 'bulk load rate while preparing the store (JSON envelopes + inserts without indexes, then the indexes built once)' },
      },
      baseline: {
        description: 'one-hour reads of other random sensor-hours made directly on the SQLite store in the benchmark process (no HTTP, no auth), joined into one JSON array, interleaved with the API reads so both meet the same cache conditions',
        figures: {
          direct_p50_ms: { value: d.p50, unit: 'ms', description: 'store.queryTimeline, p50' },
          direct_p99_ms: { value: d.p99, unit: 'ms', description: 'store.queryTimeline, p99' },
        },
      },
      ratios: {
        api_vs_direct_p99: { value: round(a.p99 / Math.max(d.p99, 0.01)), unit: '', description: 'API p99 / direct store read p99' },
      },
      targets: [] as BenchResult['targets'],
      limits: [
        'Reads share one Node.js event loop with ingestion; under heavy ingest, query latency includes waiting for the loop.',
        "A sensor-hour's ~400 events are scattered over the whole table (events are stored in arrival order, interleaved across the fleet), so one read touches ~400 separate pages: the figures follow the page cache (a CPU profile of the server shows the SQLite read itself as nearly all of the request). Next step: a layout clustered by (sensor, time).",
      ],
      notes: ['The store is bulk-loaded with its event indexes built once at the end: denser than indexes grown by live ingestion (as after a REINDEX), which favours reads; runs with indexes grown row by row gave p99 46–57 ms.', 'Queries run sequentially on an otherwise idle server, right after the store was loaded; how much of the 4 GB file the OS still caches varies from run to run, and with it both the API and the direct figures.'],
    };
    result.targets = [checkTarget('timeline query p99 < 50 ms', 'query_p99_ms', '<=', 50, result)];
    return result;
  } finally {
    await reader.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function withDatabase<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

async function populate(dbPath: string, oid: string, sensors: number, totalEvents: number, start: number, end: number, ctx: BenchContext): Promise<string[]> {
  const store = SqliteStore.open({ path: dbPath, synchronous: 'normal' });
  try {
    const iid = (await store.listInstallationKeys(oid))[0]!.iid;
    const templates: RoutingTemplate[] = [];
    for (let i = 0; i < sensors; i++) {
      const sid = newId();
      const host = { hostname: `query-${i}`, plat: 0x10000000, arch: 2, int_ip: `10.1.${i >> 8}.${i & 255}`, ext_ip: '203.0.113.7', mac: '02-00-00-00-00-01', fingerprint: newId(), sensor_version: 'bench', kernel: false };
      await store.createSensor({ sid, oid, iid, secret_hash: hashSecret(newSecret()), tags: [], enroll: start, ...host });
      templates.push(new RoutingTemplate({ oid, iid, sid, did: null, plat: host.plat, arch: host.arch, hostname: host.hostname, ext_ip: host.ext_ip, int_ip: host.int_ip, tags: [] }));
    }
    const mix = new EventMix(9);
    const payloads = Array.from({ length: 4096 }, () => {
      const e = mix.take(0);
      return { type: e.event_type, json: JSON.stringify(e.event) };
    });
    const perSensor = Math.floor(totalEvents / sensors);
    const step = (end - start) / perSensor;
    let chunk: StoredEvent[] = [];
    // One group in flight while the next is built: the store commits on its append thread meanwhile.
    let inFlight: Promise<void> = Promise.resolve();
    let written = 0;
    let p = 0;
    // In time order across the fleet, as a live cloud receives them.
    for (let k = 0; k < perSensor; k++) {
      const t = Math.floor(start + k * step);
      for (let s = 0; s < sensors; s++) {
        const tpl = templates[s]!;
        const pl = payloads[p++ & 4095]!;
        const event_id = newId();
        const event_time = t + (s % 997);
        chunk.push({ oid, sid: tpl.routing.sid, event_type: pl.type, event_time, event_id, json: tpl.envelope(pl.type, event_time, event_id, pl.json) });
        if (chunk.length === 20_000) {
          await inFlight;
          inFlight = store.appendEvents(chunk, []);
          written += chunk.length;
          chunk = [];
          if (written % 500_000 === 0) ctx.progress(`loading ${written}/${totalEvents}`);
        }
      }
    }
    await inFlight;
    if (chunk.length) await store.appendEvents(chunk, []);
    return templates.map((t) => t.routing.sid);
  } finally {
    await store.close();
  }
}
