// `picket simulate`: many simulated sensors in one process against a running cloud, with a progress
// display on stderr and a summary (human, or JSON with --json) on stdout.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { FleetSimulator, type SimulationProgress, type SimulationSummary } from '../../simulator/fleet-simulator.js';

interface SimulateOptions {
  url?: string;
  key?: string;
  data: string;
  sensors: number;
  eps: number;
  duration: number;
  encoding: 'json' | 'msgpack';
  connectRate: number;
  connectConcurrency: number;
  batchEvents: number;
  maxInflight: number;
  warmup: number;
  hostnamePrefix: string;
  seed: number;
  ca?: string;
  storm?: boolean;
  json?: boolean;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number`);
    return n;
  };
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('Load-test a running cloud: N simulated sensors enroll with an installation key and send a realistic event mix over the real sensor protocol.')
    .option('--url <url>', 'cloud URL (default: from <data>/credentials.json)')
    .option('--key <installation key>', 'installation key to enroll with (default: from <data>/credentials.json)')
    .option('--data <dir>', 'data directory of a local cloud, to find credentials.json', process.env.PICKET_DATA ?? './data')
    .option('--sensors <n>', 'number of simulated sensors', positiveInt('--sensors'), 100)
    .option('--eps <n>', 'total events per second across all sensors; 0 = as fast as the cloud acknowledges', positiveNumber('--eps'), 1000)
    .option('--duration <seconds>', 'how long to send events', positiveNumber('--duration'), 30)
    .option('--encoding <encoding>', 'frame encoding: msgpack or json', 'msgpack')
    .option('--connect-rate <n>', 'new sessions per second while connecting', positiveInt('--connect-rate'), 500)
    .option('--connect-concurrency <n>', 'most connection attempts in flight', positiveInt('--connect-concurrency'), 200)
    .option('--batch-events <n>', 'events per batch when --eps 0', positiveInt('--batch-events'), 200)
    .option('--max-inflight <n>', 'unacknowledged batches per sensor', positiveInt('--max-inflight'), 8)
    .option('--warmup <seconds>', 'seconds of load not counted in latencies', positiveNumber('--warmup'), 0)
    .option('--hostname-prefix <prefix>', 'simulated hostnames are <prefix>-00001...', 'sim')
    .option('--seed <n>', 'seed of the event mix', positiveInt('--seed'), 1)
    .option('--ca <file>', 'extra CA certificate (PEM) for a cloud with a self-signed certificate')
    .option('--storm', 'after the load, drop every session at once and time until all sensors are online again')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', '\nThe summary counts sessions, events sent and acknowledged, errors, and latency from sending a batch to its acknowledgement\n(which the cloud sends only once the batch is durably stored).')
    .action(async (opts: SimulateOptions) => {
      if (opts.encoding !== 'json' && opts.encoding !== 'msgpack') throw new Error('--encoding must be json or msgpack');
      const { url, key } = resolveTarget(opts);
      const sim = new FleetSimulator({
        url, installationKey: key, sensors: opts.sensors, encoding: opts.encoding, connectRate: opts.connectRate,
        connectConcurrency: opts.connectConcurrency, maxInflight: opts.maxInflight, hostnamePrefix: opts.hostnamePrefix, seed: opts.seed,
        ca: opts.ca ? readFileSync(opts.ca) : undefined,
      });
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const report = progressPrinter();
      const online = await sim.connectAll(Math.max(30_000, (opts.sensors / Math.max(1, opts.connectRate)) * 3000), report);
      report(sim.snapshot('connecting'));
      if (online < opts.sensors) process.stderr.write(`picket simulate: only ${online}/${opts.sensors} sensors online, sending anyway\n`);
      await sim.runLoad({ eps: opts.eps, durationS: opts.duration, batchEvents: opts.batchEvents, tickMs: 50, warmupS: opts.warmup, onProgress: report, progressIntervalMs: 1000, signal: abort.signal });
      await sim.drain(15_000);
      report(sim.snapshot('draining'));
      if (opts.storm && !abort.signal.aborted) {
        const ms = await sim.reconnectStorm(300_000, report);
        if (ms === null) process.stderr.write('picket simulate: reconnect storm did not complete within 300 s\n');
      }
      await sim.close();
      report.done();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const summary = sim.summary();
      process.stdout.write(opts.json ? JSON.stringify(summary, null, 2) + '\n' : humanSummary(summary));
      if (summary.connected === 0 || summary.events_acked < summary.events_sent) process.exitCode = 1;
    });
}

function resolveTarget(opts: SimulateOptions): { url: string; key: string } {
  let url = opts.url ?? process.env.PICKET_URL;
  let key = opts.key ?? process.env.PICKET_INSTALLATION_KEY;
  if (!url || !key) {
    const file = path.join(opts.data, 'credentials.json');
    try {
      const creds = JSON.parse(readFileSync(file, 'utf8')) as { url?: string; installation_key?: string };
      url ??= creds.url;
      key ??= creds.installation_key;
    } catch {
      // fall through to the error below
    }
    if (!url || !key) throw new Error(`need --url and --key (or a cloud's ${file})`);
  }
  return { url, key };
}

function progressPrinter(): ((p: SimulationProgress) => void) & { done(): void } {
  const tty = process.stderr.isTTY === true;
  const fn = (p: SimulationProgress): void => {
    const line = `[${p.elapsedS.toFixed(0).padStart(4)}s] ${p.phase.padEnd(10)} online ${p.online}/${p.sensors}  sent ${p.eventsSent}  acked ${p.eventsAcked}  ${p.epsAcked} ev/s acked  errors ${p.errors}`;
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  };
  return Object.assign(fn, { done: () => (tty ? process.stderr.write('\n') : undefined) });
}

function humanSummary(s: SimulationSummary): string {
  const l = s.ack_latency_ms;
  return [
    `sensors         ${s.connected}/${s.sensors} connected (${s.enrolled} enrolled), all online after ${s.all_online_ms ?? '-'} ms`,
    `events          ${s.events_sent} sent, ${s.events_acked} acknowledged, ${s.events_unacked} unacknowledged, ${s.events_deferred} deferred by flow control`,
    `rate            ${s.eps_acked} ev/s acknowledged over ${s.duration_s} s (target ${s.eps_target || 'max'}), mean event ${s.mean_event_bytes} bytes, ${s.encoding}`,
    `ack latency     p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  max ${l.max} ms`,
    `connect         p50 ${s.connect_ms.p50} ms  p99 ${s.connect_ms.p99} ms${s.reconnect_storm_ms !== null ? `; reconnect storm absorbed in ${s.reconnect_storm_ms} ms` : ''}`,
    `errors          ${s.connect_errors} connect errors, ${s.disconnects} disconnects, ${s.backoffs} backoffs${Object.keys(s.errors).length ? `: ${JSON.stringify(s.errors)}` : ''}`,
    '',
  ].join('\n');
}
