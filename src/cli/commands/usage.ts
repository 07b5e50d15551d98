// `picket usage`: the organization's metered usage per billing period (GET /v1/usage/{oid}), the same
// numbers its billing_record events carry.
import { InvalidArgumentError, type Command } from 'commander';
import { addConnectionOptions, ApiClient, type ConnectionOptions } from '../api-client.js';
import { printJson, printTable } from '../output.js';
import { parseTime } from './events.js';

interface UsageOptions extends ConnectionOptions {
  json?: boolean;
  start?: number;
  end?: number;
}

interface UsageAnswer {
  oid: string;
  period_s: number;
  periods: Array<{ start: number; ts: string; current: boolean; usage: Array<{ cat: string; k: string; v: number }> }>;
}

function time(value: string): number {
  try {
    return parseTime(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function registerUsageCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('usage')
      .description('Metered usage of your organization per billing period: events and bytes received per platform, bytes sent per output, artifact bytes stored, sensor-hours.')
      .option('--start <time>', 'earliest period: ISO 8601, Unix seconds, now or relative like -7d (default: -24h)', time)
      .option('--end <time>', 'latest period (default: now)', time)
      .option('--json', 'print the answer of GET /v1/usage/{oid} as JSON'),
  ).action(async (opts: UsageOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const answer = await api.request<UsageAnswer>('GET', `/v1/usage/${oid}`, { query: { start: opts.start, end: opts.end } });
    if (opts.json) {
      printJson(answer);
      return;
    }
    const rows = answer.periods.flatMap((p) => p.usage.map((u) => [p.ts + (p.current ? ' *' : ''), u.cat, u.k, String(u.v)]));
    printTable(['PERIOD (UTC)', 'CAT', 'KEY', 'VALUE'], rows, '(no usage in this range)');
  });
}
