// `npm run bench [-- --quick] [names...]`: runs the benchmarks against freshly started servers, writes
// bench/results/<name>.json and regenerates bench/README.md and bench/results/chart.svg.
import path from 'node:path';
import { existsSync } from 'node:fs';
import { connectionsBenchmark } from './connections.js';
import { ingestBenchmark } from './ingest.js';
import type { BenchContext } from './lib/context.js';
import { gitCommit, machineInfo } from './lib/machine.js';
import { CLI, ROOT } from './lib/processes.js';
import { writeReport } from './lib/report.js';
import { writeResult, type BenchResult } from './lib/result.js';
import { queryBenchmark } from './query.js';
import { taskingBenchmark } from './tasking.js';

type Benchmark = (ctx: BenchContext) => Promise<Omit<BenchResult, 'command' | 'commit' | 'date' | 'quick' | 'machine' | 'duration_s'>>;

const BENCHMARKS: Record<string, Benchmark> = {
  ingest: ingestBenchmark,
  connections: connectionsBenchmark,
  tasking: taskingBenchmark,
  query: queryBenchmark,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  for (const n of names) if (!BENCHMARKS[n]) throw new Error(`unknown benchmark "${n}" (have: ${Object.keys(BENCHMARKS).join(', ')})`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const selected = names.length ? names : Object.keys(BENCHMARKS);
  const tty = process.stderr.isTTY === true;
  const ctx: BenchContext = {
    quick,
    log: (line) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}[bench] ${line}\n`),
    progress: (line) => process.stderr.write(tty ? `\r\x1b[K  ${line.slice(0, 150)}` : `  ${line}\n`),
  };
  const commit = gitCommit(ROOT);
  const machine = machineInfo();
  const command = `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const started = Date.now();
  let failed = 0;
  for (const name of selected) {
    const t0 = Date.now();
    ctx.log(`${name}${quick ? ' (quick)' : ''}`);
    try {
      const r = await BENCHMARKS[name]!(ctx);
      const result: BenchResult = { ...r, command, commit, date: new Date().toISOString(), quick, machine, duration_s: Math.round((Date.now() - t0) / 100) / 10 };
      const file = writeResult(path.join(ROOT, 'bench/results'), result);
      ctx.log(`${name}: wrote ${path.relative(ROOT, file)}`);
    } catch (err) {
      failed++;
      ctx.log(`${name} FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }
  writeReport(path.join(ROOT, 'bench'));
  ctx.log(`done in ${Math.round((Date.now() - started) / 1000)} s; report in bench/README.md`);
  if (failed) process.exitCode = 1;
}

await main();
