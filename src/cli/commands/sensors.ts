// `picket sensors list|get|delete|undelete|reenroll|tag`: the fleet of the API key's organization.
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, intArg, type ApiSensor, type ApiSensorDetail, type ApiSensorPage, type ApiTags, type ConnectionOptions } from '../api-client.js';
import { archLabel, isoTime, out, platformLabel, printFields, printJson, printTable, yesNo } from '../output.js';

interface ListOptions extends ConnectionOptions {
  hostname?: string;
  online?: boolean;
  deleted?: boolean;
  limit: number;
  all?: boolean;
  json?: boolean;
}

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface TagOptions extends JsonOption {
  add?: string[];
  remove?: string[];
  ttl?: number;
}

const PAGE = 1000;

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];

function sensorRow(s: ApiSensor): string[] {
  return [
    s.sid,
    s.hostname,
    platformLabel(s.plat),
    archLabel(s.arch),
    s.state,
    s.tags.join(',') || '-',
    isoTime(s.enroll_ts),
    isoTime(s.alive_ts),
  ];
}

function printTags(sid: string, body: ApiTags, json: boolean | undefined): void {
  if (json) {
    printJson(body);
    return;
  }
  const tags = Object.values(Object.values(body.tags)[0] ?? {});
  printTable(['TAG', 'BY', 'ADDED', 'EXPIRES'], tags.map((t) => [t.tag, t.by, isoTime(t.added_ts), t.expires_ts === null ? 'never' : isoTime(t.expires_ts)]), `sensor ${sid} has no tags`);
}

export function registerSensorsCommand(program: Command): void {
  const sensors = program
    .command('sensors')
    .description('List, inspect, tag and delete the sensors of your organization (through the REST API).');

  addConnectionOptions(
    sensors
      .command('list')
      .description('List sensors: sid, hostname, platform, architecture, state (online, offline, refused, deleted), tags, enrolled and last-seen times.')
      .option('--hostname <prefix>', 'only sensors whose hostname starts with this (case-insensitive)')
      .option('--online', 'only sensors online now')
      .option('--deleted', 'include deleted sensors')
      .option('--limit <n>', 'show at most this many sensors', intArg('--limit'), 100)
      .option('--all', 'show every sensor, however many (ignores --limit)')
      .option('--json', 'print a JSON array of sensor records'),
  ).action(async (opts: ListOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const want = opts.all ? Infinity : opts.limit;
    const found: ApiSensor[] = [];
    let token: string | undefined;
    let more = false;
    do {
      const page = await api.get<ApiSensorPage>(`/v1/sensors/${oid}`, {
        limit: Math.min(PAGE, want - found.length),
        continuation_token: token,
        with_hostname_prefix: opts.hostname,
        is_online_only: opts.online ? true : undefined,
        include_deleted: opts.deleted ? true : undefined,
      });
      found.push(...page.sensors);
      token = page.continuation_token;
      more = token !== undefined;
    } while (more && found.length < want);
    if (opts.json) {
      printJson(found);
    } else {
      printTable(['SID', 'HOSTNAME', 'PLATFORM', 'ARCH', 'STATE', 'TAGS', 'ENROLLED', 'ALIVE'], found.map(sensorRow), 'no sensors');
    }
    if (more) process.stderr.write(`(showing the first ${found.length} sensors; use --limit <n> or --all for more)\n`);
  });

  addConnectionOptions(
    sensors
      .command('get')
      .description('Show one sensor: its record, its state and why (refused over quota or as a clone, deleted), its last issue, and whether it is online now.')
      .argument('<sid>', 'sensor id')
      .option('--json', 'print the API response ({info, is_online, online})'),
  ).action(async (sid: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.get<ApiSensorDetail>(`/v1/${encodeURIComponent(sid)}`);
    if (opts.json) {
      printJson(res);
      return;
    }
    const s = res.info;
    printFields([
      ['sid', s.sid],
      ['hostname', s.hostname],
      ['state', s.state_reason ? `${s.state}: ${s.state_reason}` : s.state],
      ['last issue', s.last_issue ? `${s.last_issue.kind} at ${isoTime(s.last_issue.at_ts)}: ${s.last_issue.reason}` : '-'],
      ['re-enroll order', s.reenroll_order ? `pending for ${s.reenroll_order.hostname ?? 'the next copy to connect'} since ${isoTime(s.reenroll_order.at_ts)}` : '-'],
      ['online', res.is_online ? `yes, since ${res.online.connected_at ?? '?'} from ${res.online.ext_ip ?? '?'}` : 'no'],
      ['platform', `${platformLabel(s.plat)} (0x${s.plat.toString(16).padStart(8, '0')})`],
      ['architecture', `${archLabel(s.arch)} (${s.arch})`],
      ['tags', s.tags.join(', ') || '-'],
      ['enrolled', isoTime(s.enroll_ts)],
      ['last seen', isoTime(s.alive_ts)],
      ['external ip', s.ext_ip || '-'],
      ['internal ip', s.int_ip || '-'],
      ['mac', s.mac || '-'],
      ['sensor version', s.sensor_version || '-'],
      ['kernel', yesNo(s.kernel)],
      ['isolated', yesNo(s.isolated)],
      ['should isolate', yesNo(s.should_isolate)],
      ['deleted', s.deleted_ts === null ? 'no' : isoTime(s.deleted_ts)],
      ['organization', s.oid],
      ['installation key', s.iid],
    ]);
  });

  addConnectionOptions(
    sensors
      .command('delete')
      .description('Delete a sensor: its live session is closed and it is refused when it connects again.')
      .argument('<sid>', 'sensor id')
      .option('--json', 'print the API response'),
  ).action(async (sid: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.delete<{ deleted: boolean; sid: string; disconnected: boolean }>(`/v1/${encodeURIComponent(sid)}`);
    if (opts.json) printJson(res);
    else out(`sensor ${res.sid} deleted${res.disconnected ? ' (its live session was closed)' : ''}`);
  });

  addConnectionOptions(
    sensors
      .command('undelete')
      .description('Lift a deleted sensor\'s ban: it is let in with the same sid when it next connects.')
      .argument('<sid>', 'sensor id')
      .option('--json', 'print the API response'),
  ).action(async (sid: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.post<{ undeleted: boolean; sid: string }>(`/v1/${encodeURIComponent(sid)}/undelete`);
    if (opts.json) printJson(res);
    else out(res.undeleted ? `sensor ${res.sid} undeleted` : `sensor ${res.sid} was not deleted`);
  });

  addConnectionOptions(
    sensors
      .command('reenroll')
      .description('Order a copy of a sensor (a clone) to drop its identity and enroll as a new sensor with a new sid.')
      .argument('<sid>', 'sensor id')
      .option('--hostname <name>', 'the copy to re-enroll, by hostname (default: the live session, or whichever copy connects next)')
      .option('--json', 'print the API response'),
  ).action(async (sid: string, opts: JsonOption & { hostname?: string }) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.post<{ sid: string; hostname: string | null; delivered: boolean }>(`/v1/${encodeURIComponent(sid)}/reenroll`, opts.hostname !== undefined ? { hostname: opts.hostname } : {});
    if (opts.json) printJson(res);
    else out(`re-enroll of ${res.hostname ?? 'sensor'} ${res.sid}: ${res.delivered ? 'told its live session now' : 'ordered for its next connection'}`);
  });

  addConnectionOptions(
    sensors
      .command('tag')
      .description("Show a sensor's tags, or add and remove tags, then show them.")
      .argument('<sid>', 'sensor id')
      .option('--add <tags>', 'tags to add, comma-separated (repeatable)', collect)
      .option('--remove <tags>', 'tags to remove, comma-separated (repeatable)', collect)
      .option('--ttl <seconds>', 'added tags expire after this many seconds (default: never)', intArg('--ttl'))
      .option('--json', 'print the API response ({tags: {<sid>: {<tag>: info}}})')
      .addHelpText('after', '\nExamples:\n  picket sensors tag <sid>                          # show tags\n  picket sensors tag <sid> --add web,prod --ttl 3600\n  picket sensors tag <sid> --remove prod'),
  ).action(async (sid: string, opts: TagOptions) => {
    if (opts.ttl !== undefined && !opts.add?.length) throw new Error('--ttl applies to --add');
    const api = ApiClient.fromOptions(opts);
    const route = `/v1/${encodeURIComponent(sid)}/tags`;
    let res: ApiTags | undefined;
    if (opts.add?.length) res = await api.post<ApiTags>(route, { tags: opts.add, ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}) });
    if (opts.remove?.length) res = await api.delete<ApiTags>(route, { body: { tags: opts.remove } });
    res ??= await api.get<ApiTags>(route);
    printTags(sid, res, opts.json);
  });
}
