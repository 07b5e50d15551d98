// `picket events --sid <sid>`: a sensor's timeline, and `picket events --stream deployment`: an
// organization's platform stream, paged through the API's cursors. The same command holds the offline
// catalogue subcommands (`picket events schema`, `picket events validate`).
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, intArg, type ApiTimeline, type ConnectionOptions } from '../api-client.js';
import { isoTime, out, summarizePayload } from '../output.js';
import { registerCatalogueCommands } from './events-catalogue.js';

interface EventsOptions extends ConnectionOptions {
  sid?: string;
  stream?: string;
  start: string;
  end: string;
  type?: string;
  limit: number;
  reverse?: boolean;
  json?: boolean;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const MAX_PAGE = 10_000;

/**
 * A time as Unix seconds: "now", a relative time ("-1h", "-30m", "-2d"; units s m h d w), Unix seconds
 * (or ms when the number is that large), or an ISO 8601 date/time.
 */
export function parseTime(value: string, nowMs: number = Date.now()): number {
  const v = value.trim();
  if (v === 'now') return Math.floor(nowMs / 1000);
  const rel = /^-(\d+(?:\.\d+)?)([smhdw])$/.exec(v);
  if (rel) return Math.floor(nowMs / 1000 - Number(rel[1]) * UNITS[rel[2]!]!);
  if (/^\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    return Math.floor(n >= 1e11 ? n / 1000 : n);
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new Error(`"${value}" is not a time: use ISO 8601 (2024-05-01T12:00:00Z), Unix seconds, "now", or a relative time such as -1h, -30m, -7d`);
  return Math.floor(ms / 1000);
}

function timeOption(flag: string, value: string): number {
  try {
    return parseTime(value);
  } catch (err) {
    throw new Error(`${flag}: ${(err as Error).message}`);
  }
}

export function registerEventsCommand(program: Command): void {
  const events = program
    .command('events')
    .description("Print a sensor's events (--sid) or an organization's platform stream (--stream), or work with the event catalogue (schema, validate).")
    .option('--sid <sid>', 'sensor id whose timeline to print')
    .option('--stream <stream>', 'platform stream to print instead: deployment, audit, artifact, billing, schedule')
    .option('--start <time>', 'from this time: ISO 8601, Unix seconds, "now" or relative (-1h, -30m, -7d)', '-24h')
    .option('--end <time>', 'until this time (same forms)', 'now')
    .option('--type <event_type>', 'only events of this type (case-sensitive, e.g. NEW_PROCESS, CONNECTED, enrollment)')
    .option('--limit <n>', 'print at most this many events', intArg('--limit'), 1000)
    .option('--reverse', 'newest first (default: oldest first)')
    .option('--json', 'print one JSON envelope {routing, event} per line (NDJSON)')
    .addHelpText('after', [
      '',
      'Examples:',
      '  picket events --sid <sid>                          # last 24 hours, oldest first',
      '  picket events --sid <sid> --start -1h --type DNS_REQUEST',
      '  picket events --stream deployment --start -7d       # enrollments, refusals, clones, crashes, quota changes',
      '  picket events --sid <sid> --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --json > day.ndjson',
      '  picket events schema                               # the event catalogue as JSON',
      '  picket events --sid <sid> --json | picket events validate --produced',
    ].join('\n'));
  addConnectionOptions(events);

  events.action(async (opts: EventsOptions, cmd: Command) => {
    if (cmd.args.length > 0) throw new Error(`unknown events subcommand "${cmd.args[0]}" (see picket events --help)`);
    if (!opts.sid && !opts.stream) throw new Error('--sid <sid> or --stream <stream> is required to print events (or use a subcommand: schema, validate; see picket events --help)');
    if (opts.sid && opts.stream) throw new Error('give either --sid or --stream, not both');
    const start = timeOption('--start', opts.start);
    const end = timeOption('--end', opts.end);
    if (start > end) throw new Error(`--start (${isoTime(start * 1000)}) is after --end (${isoTime(end * 1000)})`);
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    let printed = 0;
    let cursor: string | null = '-';
    while (cursor !== null && printed < opts.limit) {
      const route = opts.stream ? `/v1/insight/${oid}/stream/${encodeURIComponent(opts.stream)}` : `/v1/insight/${oid}/${encodeURIComponent(opts.sid!)}`;
      const page: ApiTimeline = await api.get<ApiTimeline>(route, {
        start,
        end,
        event_type: opts.stream ? undefined : opts.type,
        limit: Math.min(MAX_PAGE, opts.limit - printed),
        cursor,
        is_forward: !opts.reverse,
      });
      const lines: string[] = [];
      for (const e of page.events) {
        // Stream reads have no server-side type filter; the type is matched here.
        if (opts.stream && opts.type !== undefined && e.routing.event_type !== opts.type) continue;
        if (opts.json) lines.push(JSON.stringify(e));
        else if (opts.stream) lines.push(`${isoTime(e.routing.event_time)}  ${e.routing.event_type}  ${(e.routing as { sid?: string }).sid ?? '-'}  ${summarizePayload(e.event)}`.trimEnd());
        else lines.push(`${isoTime(e.routing.event_time)}  ${e.routing.event_type}  ${summarizePayload(e.event ?? (e as Record<string, unknown>).record)}`.trimEnd());
      }
      if (lines.length > 0) out(lines.join('\n'));
      printed += lines.length;
      cursor = page.next_cursor;
    }
    if (!opts.json && printed === 0) process.stderr.write(`no events ${opts.stream ? `in the ${opts.stream} stream` : `for sensor ${opts.sid}`} between ${isoTime(start * 1000)} and ${isoTime(end * 1000 + 999)}${opts.type ? ` of type ${opts.type}` : ''}\n`);
    if (cursor !== null) process.stderr.write(`(stopped at --limit ${opts.limit}; more events match)\n`);
  });

  registerCatalogueCommands(events);
}
