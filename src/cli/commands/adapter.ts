// `picket adapter`: ships log files, JSON lines on stdin and syslog into Picket over USP v2 (docs/usp.md),
// buffering on disk what the cloud has not acknowledged (docs/adapter.md). Logs are pino JSON on stderr.
// Exit codes: 0 after a graceful stop (or when stdin ended and everything was delivered), 1 for a
// configuration error, 2 when the cloud refuses the adapter for good (bad key, bad header).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { pino } from 'pino';
import { LogAdapter, type AdapterConfig } from '../../adapter/log-adapter.js';
import { EVENT_TYPE_RE } from '../../adapter/message.js';
import type { LineFormat } from '../../adapter/sources/line-encoder.js';
import { parseListenAddress, type ListenAddress } from '../../adapter/sources/syslog-listener.js';
import type { UspMapping } from '../../adapter/usp-header.js';
import { isCloudProduced } from '../../catalogue/index.js';
import { isUuid } from '../../domain/ids.js';
import { PLATFORM } from '../../domain/platform.js';
import { createLogger } from '../../observability/logger.js';

interface AdapterOptions {
  url?: string;
  oid?: string;
  key?: string;
  hostname?: string;
  seedKey?: string;
  platform?: string;
  stateDir?: string;
  file: string[];
  stdin?: boolean;
  syslogUdp?: ListenAddress;
  syslogTcp?: ListenAddress;
  format: 'auto' | LineFormat;
  eventType?: string;
  eventTypePath?: string;
  eventTimePath?: string;
  hostnamePath?: string;
  investigationIdPath?: string;
  parsingRe?: string;
  compress: boolean;
  maxBufferBytes: number;
  maxLineBytes: number;
  maxSyslogBytes: number;
  readFrom: 'beginning' | 'end';
  pollInterval: number;
  fsyncInterval: number;
  reconnectBase: number;
  reconnectCap: number;
  drainTimeout: number;
  statsInterval: number;
  ca?: string;
  logLevel: string;
}

export const EXIT_REFUSED = 2;
/** A data message must fit the cloud's 1 MiB frame limit with room for its other fields. */
const MAX_LINE_BYTES_LIMIT = 960 * 1024;

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function seconds(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`expected a number of seconds, at least ${min}`);
    return n;
  };
}

function listenAddress(value: string): ListenAddress {
  try {
    return parseListenAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerAdapterCommand(program: Command): void {
  program
    .command('adapter')
    .description('Ship log files, JSON lines on stdin, or syslog into Picket over USP, buffered on disk until the cloud acknowledges them (docs/adapter.md).')
    .addOption(new Option('--url <cloud url>', 'URL of the Picket cloud: http(s)://host:port or ws(s)://host:port/usp').env('PICKET_URL'))
    .addOption(new Option('--oid <oid>', 'organization id').env('PICKET_OID'))
    .addOption(new Option('--key <installation key>', 'installation key "<iid>.<secret>" (prefer the environment variable: arguments are visible to other users)').env('PICKET_INSTALLATION_KEY'))
    .option('--hostname <name>', 'host name of the adapter in the cloud (default: the system host name)')
    .option('--seed-key <key>', 'identity of the adapter: with the oid it gives the sid; the same key is the same sensor (default: the host name)')
    .option('--platform <name>', 'platform in the header: text, json, … or a number (default: text when lines are shipped as text, else json)')
    .option('--state-dir <dir>', 'directory of the adapter state: instance id, unacknowledged messages, file positions (one per adapter)')
    .addOption(new Option('--file <path>', 'tail this file, surviving rotation (repeatable)').argParser(collect).default([], 'none'))
    .option('--stdin', 'ship the lines of stdin (JSON lines by default); the adapter exits once stdin ends and everything is delivered')
    .option('--syslog-udp <[host:]port>', 'receive syslog (RFC 5424 / RFC 3164) on UDP; host defaults to 0.0.0.0', listenAddress)
    .option('--syslog-tcp <[host:]port>', 'receive syslog on TCP, octet-counted or newline-delimited; host defaults to 0.0.0.0', listenAddress)
    .addOption(new Option('--format <format>', 'how file and stdin lines are shipped: text ({"text": line}), json (a JSON object per line; other lines as text), auto: files as text, stdin as json').choices(['auto', 'text', 'json']).default('auto'))
    .option('--event-type <type>', 'event type of every message (default: syslog for syslog; otherwise the mapping, else "log")')
    .option('--event-type-path <path>', 'mapping: payload path of the event type (keys separated by /)')
    .option('--event-time-path <path>', 'mapping: payload path of the event time (default: the time the line was read, or the syslog time)')
    .option('--hostname-path <path>', 'mapping: payload path of the host the event is about (syslog: "hostname")')
    .option('--investigation-id-path <path>', 'mapping: payload path of the investigation id')
    .option('--parsing-re <regex>', 'mapping: regular expression with named groups turning a text line into fields ((?P<name>…) accepted)')
    .option('--no-compress', 'send data messages without gzip')
    .option('--max-buffer-bytes <n>', 'most bytes of unacknowledged messages kept (memory and disk); files, stdin and syslog over TCP stop reading at half of it, syslog over UDP drops the oldest when full', integer('--max-buffer-bytes', 4 * 1024 * 1024), 64 * 1024 * 1024)
    .option('--max-line-bytes <n>', 'longer lines are cut', integer('--max-line-bytes', 64, MAX_LINE_BYTES_LIMIT), 256 * 1024)
    .option('--max-syslog-bytes <n>', 'longer syslog messages are cut', integer('--max-syslog-bytes', 480, MAX_LINE_BYTES_LIMIT), 64 * 1024)
    .addOption(new Option('--read-from <where>', 'where to start in a file the adapter has never read').choices(['beginning', 'end']).default('beginning'))
    .option('--poll-interval <ms>', 'how often tailed files are checked for new lines and rotation', integer('--poll-interval', 10, 60_000), 250)
    .option('--fsync-interval <ms>', 'fsync the buffer this often (0: after every write); a killed process loses nothing either way, this bounds what a power cut can', integer('--fsync-interval', 0, 3_600_000), 1000)
    .option('--reconnect-base <seconds>', 'upper bound of the first reconnect wait (exponential backoff with full jitter)', seconds(0.01), 0.5)
    .option('--reconnect-cap <seconds>', 'largest upper bound of a reconnect wait', seconds(0.01), 30)
    .option('--drain-timeout <seconds>', 'on SIGINT/SIGTERM, wait this long for the cloud to acknowledge what is buffered', seconds(0), 10)
    .option('--stats-interval <seconds>', 'log the adapter status this often (0: never)', seconds(0), 60)
    .option('--ca <file>', 'extra CA certificate (PEM) to trust for wss, e.g. for a self-signed server certificate')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .action(async (opts: AdapterOptions) => {
      process.exitCode = await runAdapter(opts);
    });
}

/** Checks the options and turns them into the adapter's configuration; throws InvalidArgumentError. */
export function adapterConfig(opts: AdapterOptions, logger: AdapterConfig['logger']): AdapterConfig {
  const need = (value: string | undefined, what: string): string => {
    if (value === undefined || value === '') throw new InvalidArgumentError(`${what} is required`);
    return value;
  };
  const url = need(opts.url, '--url (or PICKET_URL)');
  const oid = need(opts.oid, '--oid (or PICKET_OID)');
  if (!isUuid(oid)) throw new InvalidArgumentError(`--oid must be a UUID (got "${oid}")`);
  const installationKey = need(opts.key, '--key (or PICKET_INSTALLATION_KEY)');
  const stateDir = need(opts.stateDir, '--state-dir');
  if (opts.file.length === 0 && !opts.stdin && !opts.syslogUdp && !opts.syslogTcp) {
    throw new InvalidArgumentError('nothing to ship: give --file, --stdin, --syslog-udp or --syslog-tcp');
  }
  const hostname = opts.hostname ?? os.hostname();
  if (hostname.length < 1 || hostname.length > 255) throw new InvalidArgumentError('--hostname must have 1 to 255 characters');
  const seedKey = opts.seedKey ?? hostname;
  if (seedKey.length < 1 || seedKey.length > 256) throw new InvalidArgumentError('--seed-key must have 1 to 256 characters');
  if (opts.eventType !== undefined) {
    if (!EVENT_TYPE_RE.test(opts.eventType)) throw new InvalidArgumentError('--event-type must be 1 to 64 of A-Z a-z 0-9 _ . : -');
    if (isCloudProduced(opts.eventType)) throw new InvalidArgumentError(`--event-type ${opts.eventType} is produced by the cloud itself; the cloud refuses it from adapters`);
    if (opts.eventTypePath !== undefined) throw new InvalidArgumentError('--event-type and --event-type-path exclude each other (the event type of a message overrides the mapping)');
  }
  if (opts.parsingRe !== undefined) {
    try {
      new RegExp(opts.parsingRe.replace(/\(\?P</g, '(?<'));
    } catch (err) {
      throw new InvalidArgumentError(`--parsing-re: ${(err as Error).message}`);
    }
  }
  const fileFormat: LineFormat = opts.format === 'auto' ? 'text' : opts.format;
  const inputFormat: LineFormat = opts.format === 'auto' ? 'json' : opts.format;
  const shipsText = (opts.file.length > 0 && fileFormat === 'text') || (opts.stdin === true && inputFormat === 'text');
  let platform: string | number = opts.platform ?? (shipsText ? 'text' : 'json');
  if (/^\d+$/.test(String(platform))) platform = Number(platform);
  else if (!(String(platform) in PLATFORM)) throw new InvalidArgumentError(`--platform: unknown platform "${String(platform)}" (known: ${Object.keys(PLATFORM).join(', ')}, or a number)`);
  if (opts.reconnectCap < opts.reconnectBase) throw new InvalidArgumentError('--reconnect-cap must not be below --reconnect-base');
  const mapping: UspMapping = {
    ...(opts.parsingRe !== undefined ? { parsing_re: opts.parsingRe } : {}),
    ...(opts.eventTypePath !== undefined ? { event_type_path: opts.eventTypePath } : {}),
    ...(opts.eventTimePath !== undefined ? { event_time_path: opts.eventTimePath } : {}),
    ...(opts.hostnamePath !== undefined ? { sensor_hostname_path: opts.hostnamePath } : {}),
    ...(opts.investigationIdPath !== undefined ? { investigation_id_path: opts.investigationIdPath } : {}),
  };
  let ca: Buffer | undefined;
  if (opts.ca !== undefined) {
    try {
      ca = readFileSync(opts.ca);
    } catch (err) {
      throw new InvalidArgumentError(`cannot read --ca ${opts.ca}: ${(err as Error).message}`);
    }
  }
  return {
    url,
    identity: { oid, installationKey, hostname, seedKey, platform, mapping },
    stateDir: path.resolve(stateDir),
    files: opts.file.map((f) => path.resolve(f)),
    ...(opts.stdin ? { input: process.stdin } : {}),
    ...(opts.syslogUdp ? { syslogUdp: opts.syslogUdp } : {}),
    ...(opts.syslogTcp ? { syslogTcp: opts.syslogTcp } : {}),
    fileFormat,
    inputFormat,
    ...(opts.eventType !== undefined ? { eventType: opts.eventType } : {}),
    mapsEventType: opts.eventTypePath !== undefined,
    mapsEventTime: opts.eventTimePath !== undefined,
    compress: opts.compress,
    maxBufferBytes: opts.maxBufferBytes,
    maxLineBytes: opts.maxLineBytes,
    maxSyslogBytes: opts.maxSyslogBytes,
    readFrom: opts.readFrom,
    pollIntervalMs: opts.pollInterval,
    fsyncIntervalMs: opts.fsyncInterval,
    reconnect: { baseMs: Math.round(opts.reconnectBase * 1000), capMs: Math.round(opts.reconnectCap * 1000) },
    statsIntervalMs: Math.round(opts.statsInterval * 1000),
    ...(ca ? { ca } : {}),
    logger,
  };
}

async function runAdapter(opts: AdapterOptions): Promise<number> {
  const root = createLogger(opts.logLevel, pino.destination(2));
  const logger = root.child({ component: 'adapter' });
  const config = adapterConfig(opts, root);
  const adapter = LogAdapter.create(config);
  await adapter.start();

  // The first signal drains and stops; a second one exits at once (the buffer is on disk either way).
  let signals = 0;
  let onSignal!: (signal: NodeJS.Signals) => void;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => {
      if (++signals > 1) {
        logger.warn({ signal }, 'second signal: exiting without waiting');
        process.exit(130);
      }
      resolve(signal);
    };
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const drainMs = Math.round(opts.drainTimeout * 1000);
  const inputEnded = adapter.finished.then(() => 'ended' as const);
  const outcome = await Promise.race([signalled.then((signal) => ({ signal })), adapter.fatal.then((fatal) => ({ fatal })), inputEnded]);
  let code = 0;
  if (outcome === 'ended') {
    logger.info({ unacknowledged: adapter.buffer.size }, 'all input read; waiting until the cloud has acknowledged everything');
    const why = await Promise.race([adapter.delivered().then(() => 'delivered' as const), signalled.then(() => 'signal' as const), adapter.fatal.then(() => 'fatal' as const)]);
    if (why === 'fatal') code = EXIT_REFUSED;
    await adapter.stop(why === 'delivered' ? 0 : drainMs);
  } else if ('fatal' in outcome) {
    code = EXIT_REFUSED;
    await adapter.stop(0);
  } else {
    logger.info({ signal: outcome.signal }, 'stopping the adapter');
    await adapter.stop(drainMs);
  }
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  // Everything is closed by now; this only guards against a handle someone forgot (stdin, for one).
  setTimeout(() => process.exit(), 3000).unref();
  return code;
}
