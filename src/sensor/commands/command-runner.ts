// The commands the reference sensor answers (decisions.md §4): each returns its result event with an
// ERROR code from the reference table. Unknown commands get RECEIPT ERROR 50, bad arguments ERROR 87,
// `run` without --allow-run RECEIPT ERROR 5.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseCommand, type ParsedCommand } from '../../protocol/command-line.js';
import { BadArguments, ERROR, result, type CommandResult } from './error-codes.js';
import type { NetworkIsolation } from './network-isolation.js';
import { uploadArtifact, UploadError, type ArtifactUploadTarget } from './artifact-upload.js';

/** Most bytes of stdout (and of stderr) a `run` answer carries. */
export const RUN_OUTPUT_LIMIT = 64 * 1024;
export const RUN_DEFAULT_TIMEOUT_S = 30;
export const RUN_MAX_TIMEOUT_S = 3600;

/** Collectors whose configuration `update` may change, with a check of that configuration. */
const COLLECTORS: Record<string, (config: Record<string, unknown>) => string | undefined> = {
  sync: (c) => (Number.isInteger(c.interval_s) && (c.interval_s as number) >= 1 && (c.interval_s as number) <= 86_400 && Object.keys(c).length === 1 ? undefined : 'sync takes {"interval_s": 1..86400}'),
};

export interface SelfTestCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** What commands may use of the running sensor. */
export interface CommandContext {
  stateDir: string;
  /** The cloud endpoint the isolation must keep reachable. */
  cloud: { host: string; port: number };
  allowRun: boolean;
  isolation: NetworkIsolation;
  /** The sensor's own checks for `selftest`. */
  selfTest(): Promise<SelfTestCheck[]>;
  /** A collector's configuration changed (already persisted). */
  applyCollector(name: string, config: Record<string, unknown>): void;
  /** The host's isolation changed: later hellos report it. */
  isolationChanged(isolated: boolean): void;
  /** Where artifact_get uploads; absent when the sensor has no ingestion key (artifact_get answers ERROR 5). */
  artifacts?: ArtifactUploadTarget;
}

export const CONFIG_FILE_NAME = 'config.json';

export interface SensorConfigFile {
  collectors: Record<string, Record<string, unknown>>;
  performance_mode: boolean;
}

export async function loadSensorConfig(stateDir: string): Promise<SensorConfigFile> {
  try {
    const parsed = JSON.parse(await fs.readFile(path.join(stateDir, CONFIG_FILE_NAME), 'utf8')) as Partial<SensorConfigFile>;
    return { collectors: parsed.collectors ?? {}, performance_mode: parsed.performance_mode === true };
  } catch {
    return { collectors: {}, performance_mode: false };
  }
}

async function saveSensorConfig(stateDir: string, config: SensorConfigFile): Promise<void> {
  const file = path.join(stateDir, CONFIG_FILE_NAME);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(tmp, file);
}

export class CommandRunner {
  constructor(private readonly ctx: CommandContext) {}

  /** Runs one command line; never throws: every failure is an answer with an ERROR code. */
  async execute(line: string): Promise<CommandResult> {
    let command: ParsedCommand;
    try {
      command = parseCommand(line);
    } catch (err) {
      return result('RECEIPT', ERROR.INVALID_PARAMETER, (err as Error).message);
    }
    const eventType = RESULT_EVENT[command.name];
    try {
      switch (command.name) {
        case 'segregate_network': return await this.segregate(command);
        case 'rejoin_network': return await this.rejoin(command);
        case 'run': return await this.run(command);
        case 'set_performance_mode': return await this.performanceMode(command);
        case 'unload_kernel': return await this.unloadKernel(command);
        case 'update': return await this.update(command);
        case 'selftest': return await this.selfTest(command);
        case 'artifact_get': return await this.artifactGet(command);
        default: return result('RECEIPT', ERROR.NOT_SUPPORTED, `unknown command: ${command.name.slice(0, 64)}`);
      }
    } catch (err) {
      if (err instanceof BadArguments) return result(eventType ?? 'RECEIPT', ERROR.INVALID_PARAMETER, err.message);
      return result(eventType ?? 'RECEIPT', ERROR.INVALID_FUNCTION, `${command.name} failed: ${(err as Error).message}`);
    }
  }

  private async segregate(c: ParsedCommand): Promise<CommandResult> {
    noArguments(c);
    const outcome = await this.ctx.isolation.isolate(this.ctx.cloud);
    if (outcome.error === ERROR.SUCCESS) this.ctx.isolationChanged(true);
    return result('SEGREGATE_NETWORK', outcome.error, outcome.message);
  }

  private async rejoin(c: ParsedCommand): Promise<CommandResult> {
    noArguments(c);
    const outcome = await this.ctx.isolation.rejoin();
    if (outcome.error === ERROR.SUCCESS) this.ctx.isolationChanged(false);
    return result('REJOIN_NETWORK', outcome.error, outcome.message);
  }

  private async run(c: ParsedCommand): Promise<CommandResult> {
    if (!this.ctx.allowRun) return result('RECEIPT', ERROR.ACCESS_DENIED, 'run is disabled on this sensor (start it with --allow-run)');
    const known = new Set(['shell-command', 'timeout']);
    for (const name of c.options.keys()) if (!known.has(name)) throw new BadArguments(`run: unsupported option --${name} (this sensor runs --shell-command <command> [--timeout <seconds>])`);
    const shellCommand = c.options.get('shell-command');
    if (typeof shellCommand !== 'string' || shellCommand.trim() === '' || c.positional.length > 0) throw new BadArguments('run needs --shell-command <command>');
    const timeoutS = optionalNumber(c, 'timeout') ?? RUN_DEFAULT_TIMEOUT_S;
    if (!(timeoutS > 0 && timeoutS <= RUN_MAX_TIMEOUT_S)) throw new BadArguments(`run: --timeout must be 1..${RUN_MAX_TIMEOUT_S} seconds`);
    const out = await runShell(shellCommand, timeoutS * 1000);
    const extra = { EXIT_CODE: out.exitCode, STDOUT: out.stdout, STDERR: out.stderr, IS_STDOUT_TRUNCATED: out.stdoutTruncated, IS_STDERR_TRUNCATED: out.stderrTruncated };
    if (out.timedOut) return result('RUN', ERROR.TIMEOUT, `timed out after ${timeoutS} s`, extra);
    if (out.spawnError) return result('RUN', ERROR.INVALID_FUNCTION, out.spawnError, extra);
    return result('RUN', ERROR.SUCCESS, undefined, extra);
  }

  private async performanceMode(c: ParsedCommand): Promise<CommandResult> {
    for (const name of c.options.keys()) if (name !== 'is-enabled') throw new BadArguments(`set_performance_mode: unsupported option --${name}`);
    const value = c.options.get('is-enabled');
    const enabled = value === undefined ? false : value === true || value === 'true';
    if (typeof value === 'string' && value !== 'true' && value !== 'false') throw new BadArguments('set_performance_mode: --is-enabled takes no value, or true / false');
    const config = await loadSensorConfig(this.ctx.stateDir);
    config.performance_mode = enabled;
    await saveSensorConfig(this.ctx.stateDir, config);
    return result('SET_PERFORMANCE_MODE', ERROR.SUCCESS, undefined, { IS_ENABLED: enabled });
  }

  private async unloadKernel(c: ParsedCommand): Promise<CommandResult> {
    noArguments(c);
    return result('UNLOAD_KERNEL', ERROR.NOT_SUPPORTED, 'this sensor has no kernel component');
  }

  private async update(c: ParsedCommand): Promise<CommandResult> {
    const name = c.options.get('collector');
    const raw = c.options.get('config');
    if (typeof name !== 'string' || typeof raw !== 'string' || c.positional.length > 0) throw new BadArguments('update needs --collector <name> --config <json>');
    const check = COLLECTORS[name];
    if (!check) throw new BadArguments(`update: unknown collector "${name.slice(0, 64)}" (known: ${Object.keys(COLLECTORS).join(', ')})`);
    let config: unknown;
    try {
      config = JSON.parse(raw);
    } catch (err) {
      throw new BadArguments(`update: --config is not JSON (${(err as Error).message})`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new BadArguments('update: --config must be a JSON object');
    const problem = check(config as Record<string, unknown>);
    if (problem) throw new BadArguments(`update: ${problem}`);
    const file = await loadSensorConfig(this.ctx.stateDir);
    file.collectors[name] = config as Record<string, unknown>;
    await saveSensorConfig(this.ctx.stateDir, file);
    this.ctx.applyCollector(name, config as Record<string, unknown>);
    return result('UPDATE', ERROR.SUCCESS, undefined, { COLLECTOR: name, CONFIG: config });
  }

  /** artifact_get --file-path <path> [--days-retention N] [--payload-id ID] [--type T]: uploads the file; RECEIPT. */
  private async artifactGet(c: ParsedCommand): Promise<CommandResult> {
    const target = this.ctx.artifacts;
    if (!target) return result('RECEIPT', ERROR.ACCESS_DENIED, 'artifact_get needs an ingestion key: start the sensor with --ingestion-key');
    const known = new Set(['file-path', 'file', 'days-retention', 'payload-id', 'type']);
    for (const name of c.options.keys()) if (!known.has(name)) throw new BadArguments(`artifact_get: unsupported option --${name}`);
    const filePath = c.options.get('file-path') ?? c.options.get('file');
    if (typeof filePath !== 'string' || filePath === '' || c.positional.length > 0) throw new BadArguments('artifact_get needs --file-path <path>');
    const days = optionalNumber(c, 'days-retention');
    if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 3650)) throw new BadArguments('artifact_get: --days-retention must be 1..3650');
    const payloadId = c.options.get('payload-id');
    const hint = c.options.get('type');
    try {
      const up = await uploadArtifact(target, {
        filePath, ...(days !== undefined ? { retentionDays: days } : {}),
        ...(typeof payloadId === 'string' ? { payloadId } : {}), ...(typeof hint === 'string' ? { hint } : {}),
      });
      return result('RECEIPT', ERROR.SUCCESS, undefined, { FILE_PATH: filePath, LOG_ID: up.logId, SIZE: up.size, HASH_MD5: up.md5 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return result('RECEIPT', ERROR.FILE_NOT_FOUND, `file not found: ${filePath}`, { FILE_PATH: filePath });
      if (code === 'EACCES' || code === 'EPERM') return result('RECEIPT', ERROR.ACCESS_DENIED, `cannot read ${filePath}`, { FILE_PATH: filePath });
      if (err instanceof UploadError && err.status === 401) return result('RECEIPT', ERROR.ACCESS_DENIED, err.message, { FILE_PATH: filePath });
      return result('RECEIPT', ERROR.INVALID_FUNCTION, `artifact_get failed: ${(err as Error).message}`, { FILE_PATH: filePath });
    }
  }

  private async selfTest(c: ParsedCommand): Promise<CommandResult> {
    noArguments(c);
    const checks = await this.ctx.selfTest();
    const failed = checks.filter((x) => !x.ok);
    return result('SELF_TEST_RESULT', failed.length === 0 ? ERROR.SUCCESS : ERROR.INVALID_FUNCTION, failed.length === 0 ? 'all checks passed' : `failed: ${failed.map((x) => x.name).join(', ')}`, { CHECKS: checks });
  }
}

/** The result event of each command (its refusals for bad arguments use it too). */
const RESULT_EVENT: Record<string, string> = {
  segregate_network: 'SEGREGATE_NETWORK',
  rejoin_network: 'REJOIN_NETWORK',
  run: 'RUN',
  set_performance_mode: 'SET_PERFORMANCE_MODE',
  unload_kernel: 'UNLOAD_KERNEL',
  update: 'UPDATE',
  selftest: 'SELF_TEST_RESULT',
};

function noArguments(c: ParsedCommand): void {
  if (c.positional.length > 0 || c.options.size > 0) throw new BadArguments(`${c.name} takes no arguments`);
}

function optionalNumber(c: ParsedCommand, name: string): number | undefined {
  const v = c.options.get(name);
  if (v === undefined) return undefined;
  const n = typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new BadArguments(`${c.name}: --${name} needs a number`);
  return n;
}

interface ShellOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  spawnError?: string;
}

/** Runs a shell command with bounded output and a timeout (the whole process group is killed on timeout). */
function runShell(command: string, timeoutMs: number): Promise<ShellOutcome> {
  return new Promise((resolve) => {
    const shell = process.platform === 'win32' ? { file: 'cmd.exe', args: ['/d', '/s', '/c', command] } : { file: '/bin/sh', args: ['-c', command] };
    const child = spawn(shell.file, shell.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: process.platform !== 'win32' });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], stdoutBytes: 0, stderrBytes: 0, stdoutTruncated: false, stderrTruncated: false };
    const collect = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const room = RUN_OUTPUT_LIMIT - out[`${which}Bytes`];
      if (room <= 0) {
        out[`${which}Truncated`] = true;
        return;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (chunk.length > room) out[`${which}Truncated`] = true;
      out[which].push(part);
      out[`${which}Bytes`] += part.length;
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    const finish = (exitCode: number | null, spawnError?: string) => {
      clearTimeout(timer);
      resolve({
        exitCode, timedOut, stdout: Buffer.concat(out.stdout).toString('utf8'), stderr: Buffer.concat(out.stderr).toString('utf8'),
        stdoutTruncated: out.stdoutTruncated, stderrTruncated: out.stderrTruncated, ...(spawnError ? { spawnError } : {}),
      });
    };
    child.on('error', (err) => finish(null, err.message));
    child.on('close', (code) => finish(code));
  });
}
