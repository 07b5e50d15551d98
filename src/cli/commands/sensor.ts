// `picket sensor`: runs the reference sensor in the foreground until SIGTERM/SIGINT. Logs are pino JSON on
// stderr. Exit codes: 0 after a graceful stop, 1 for a configuration error, 2 when the cloud refuses the
// sensor for good (invalid key or secret, no common protocol version), 70 after a crash (uncaught error)
// and 128 + n after a fatal signal n; a crash is recorded in <state-dir>/crash.json and reported on the next
// start. A deleted sensor does not exit: it retries rarely (--denied-retry) until it is undeleted.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { pino } from 'pino';
import { createLogger } from '../../observability/logger.js';
import type { Encoding } from '../../protocol/codec.js';
import { CrashFile, installCrashHandlers } from '../../sensor/crash-record.js';
import { DEBUG_CRASH_MODES, type DebugCrashMode } from '../../sensor/debug-crash.js';
import { IdentityFileError } from '../../sensor/identity-file.js';
import { ReferenceSensor, SensorConfigError, SensorFatalError } from '../../sensor/reference-sensor.js';

interface SensorOptions {
  key?: string;
  url?: string;
  stateDir: string;
  hostname?: string;
  fingerprint?: string;
  deniedRetry: number;
  reconnectBase: number;
  reconnectCap: number;
  debugCrash?: DebugCrashMode;
  allowRun?: boolean;
  ingestionKey?: string;
  encoding: Encoding;
  bufferEvents: number;
  bufferBytes: number;
  logLevel: string;
  ca?: string;
}

export const EXIT_REFUSED = 2;

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function registerSensorCommand(program: Command): void {
  program
    .command('sensor')
    .description('Run the reference sensor: enroll with an installation key (first start), then stay connected and deliver events.')
    .option('--key <installation key>', 'installation key (<iid>.<secret>); needed only when the state directory holds no identity yet')
    .option('--url <cloud url>', 'URL of the Picket cloud: http(s)://host:port or ws(s)://host:port/sensor (default: the URL enrolled with)')
    .option('--state-dir <dir>', 'directory of the sensor state (identity.json, mode 0600)', path.join(os.homedir(), '.picket', 'sensor'))
    .option('--hostname <name>', 'host name reported to the cloud (default: the system host name)')
    .option('--fingerprint <text>', 'host fingerprint reported to the cloud (default: a hash of the machine id and MAC); give each clone of a VDI template its own')
    .option('--denied-retry <seconds>', 'while the sensor is deleted (refused with 4011), wait this long between attempts', positiveSeconds, 3600)
    .option('--allow-run', 'let the cloud run shell commands on this host (the run command); off by default: run is answered with RECEIPT ERROR 5')
    .addOption(new Option('--ingestion-key <key>', 'ingestion key of the organization (<key_id>.<secret>): lets artifact_get upload files (without it artifact_get answers ERROR 5)').env('PICKET_INGESTION_KEY'))
    .option('--reconnect-base <seconds>', 'upper bound of the first reconnect wait (exponential backoff with full jitter)', positiveSeconds, 1)
    .option('--reconnect-cap <seconds>', 'largest upper bound of a reconnect wait', positiveSeconds, 60)
    .addOption(new Option('--debug-crash <mode>', 'debug switch: crash on purpose after connecting ("exception": an uncaught error, "signal": SIGABRT), to check that sensor_crash reaches you').choices([...DEBUG_CRASH_MODES]).env('PICKET_SENSOR_DEBUG_CRASH'))
    .addOption(new Option('--encoding <encoding>', 'frame encoding').choices(['json', 'msgpack']).default('msgpack'))
    .option('--buffer-events <n>', 'most events buffered while the cloud is unreachable', positiveInteger, 100_000)
    .option('--buffer-bytes <n>', 'most bytes buffered while the cloud is unreachable', positiveInteger, 64 * 1024 * 1024)
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .option('--ca <file>', 'extra CA certificate (PEM) to trust for wss, e.g. for a self-signed server certificate')
    .action(async (opts: SensorOptions) => {
      process.exitCode = await runSensor(opts);
    });
}

async function runSensor(opts: SensorOptions): Promise<number> {
  const logger = createLogger(opts.logLevel, pino.destination(2)).child({ component: 'sensor' });
  let ca: Buffer | undefined;
  if (opts.ca) {
    try {
      ca = readFileSync(opts.ca);
    } catch (err) {
      throw new Error(`cannot read --ca ${opts.ca}: ${(err as Error).message}`);
    }
  }
  if (opts.reconnectCap < opts.reconnectBase) throw new InvalidArgumentError('--reconnect-cap must not be below --reconnect-base');
  const stateDir = path.resolve(opts.stateDir);
  // From here on an abnormal death leaves <state-dir>/crash.json, reported on the next start.
  installCrashHandlers(new CrashFile(stateDir), logger);
  const sensor = new ReferenceSensor({
    stateDir,
    deniedRetryMs: Math.round(opts.deniedRetry * 1000),
    reconnect: { baseMs: Math.round(opts.reconnectBase * 1000), capMs: Math.round(opts.reconnectCap * 1000) },
    ...(opts.fingerprint !== undefined ? { fingerprint: opts.fingerprint } : {}),
    ...(opts.debugCrash !== undefined ? { debugCrash: opts.debugCrash } : {}),
    allowRun: opts.allowRun === true,
    ...(opts.ingestionKey ? { ingestionKey: opts.ingestionKey } : {}),
    encoding: opts.encoding,
    bufferEvents: opts.bufferEvents,
    bufferBytes: opts.bufferBytes,
    logger,
    ...(opts.url !== undefined ? { url: opts.url } : {}),
    ...(opts.key !== undefined ? { installationKey: opts.key } : {}),
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    ...(ca ? { ca } : {}),
  });

  let done: Promise<void>;
  try {
    ({ done } = await sensor.start());
  } catch (err) {
    // main prints the message plainly and exits 1.
    if (err instanceof SensorConfigError || err instanceof IdentityFileError) logger.error({ err: err.message }, 'sensor cannot start');
    throw err;
  }
  logger.info({ state_dir: sensor.identityFile.stateDir, stream_id: sensor.streamId, sid: sensor.sid ?? null }, 'sensor started');

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(130);
    }
    logger.info({ signal }, 'stopping the sensor');
    void sensor.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await done;
    logger.info({ sid: sensor.sid ?? null }, 'sensor stopped');
    return 0;
  } catch (err) {
    if (err instanceof SensorFatalError) {
      logger.error({ code: err.code, reason: err.reason, err: err.message }, 'sensor refused by the cloud');
      logger.info({ sid: sensor.sid ?? null, exit_code: EXIT_REFUSED }, 'sensor stopped');
      return EXIT_REFUSED;
    }
    logger.error({ err: (err as Error).message }, 'sensor failed');
    logger.info({ sid: sensor.sid ?? null, exit_code: 1 }, 'sensor stopped');
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // Everything is closed by now; this only guards against a handle someone forgot.
    setTimeout(() => process.exit(), 3000).unref();
  }
}
