// Crash records of the reference sensor (decisions.md §3, protocol.md §3 "Crash reports"): when the
// process dies from an uncaught error or a fatal signal it writes <state-dir>/crash.json synchronously;
// the next start sends it in hello until a welcome arrives, then removes it. The cloud turns each
// crash_id into exactly one sensor_crash.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value } from 'typebox/value';
import type { Logger } from '../observability/logger.js';
import { CrashReport } from '../protocol/messages.js';

export const CRASH_FILE_NAME = 'crash.json';

/** What the file holds: the report sent to the cloud, plus local details for whoever reads the file. */
export interface CrashRecord extends CrashReport {
  /** Source file of the top stack frame (package-relative), or the signal name. */
  where: string;
  stack?: string;
}

/** Fatal signals a Node process can still catch when they are sent to it (kill(2), abort()). */
export const FATAL_SIGNALS = ['SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGILL', 'SIGSEGV'] as const;

/** Exit code after an uncaught error (EX_SOFTWARE); a fatal signal exits with 128 + its number. */
export const CRASH_EXIT_CODE = 70;

/** The package root: paths in FILE_ID are relative to it, so the id is the same on every host. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** FNV-1a, 32 bits: a stable numeric id for a source file path. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The first stack frame with a file and line: its package-relative path and line number. */
export function topFrame(stack: string | undefined): { file: string; line: number } | undefined {
  for (const line of (stack ?? '').split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):\d+\)?\s*$/.exec(line.trim());
    if (!m || m[1]!.startsWith('node:')) continue;
    let file = m[1]!;
    if (file.startsWith('file://')) file = fileURLToPath(file);
    const relative = path.relative(PACKAGE_ROOT, file);
    return { file: (relative.startsWith('..') ? file : relative).split(path.sep).join('/'), line: Number(m[2]) };
  }
  return undefined;
}

/** The record of an uncaught error. */
export function crashFromError(err: unknown, now: number = Date.now()): CrashRecord {
  const error = err instanceof Error ? err : new Error(String(err));
  const frame = topFrame(error.stack);
  const record: CrashRecord = {
    crash_id: randomUUID(),
    file_id: frame ? fnv1a32(frame.file) : 0,
    line_number: frame?.line ?? 0,
    // On Linux the main thread's OS thread id is the process id.
    thread_id: process.pid,
    crashed_at: now,
    message: `${error.name}: ${error.message}`.slice(0, 1024),
    where: frame ? `${frame.file}:${frame.line}` : 'unknown',
  };
  if (error.stack) record.stack = error.stack.slice(0, 8192);
  return record;
}

/** The record of a fatal signal: FILE_ID 0, LINE_NUMBER the signal number. */
export function crashFromSignal(signal: NodeJS.Signals, signalNumber: number, now: number = Date.now()): CrashRecord {
  return {
    crash_id: randomUUID(), file_id: 0, line_number: signalNumber, thread_id: process.pid, crashed_at: now,
    message: `fatal signal ${signal}`, where: signal,
  };
}

export class CrashFile {
  readonly path: string;

  constructor(readonly stateDir: string) {
    this.path = path.join(stateDir, CRASH_FILE_NAME);
  }

  /** Writes the record synchronously and durably (temp file, fsync, rename): the process is dying. */
  writeSync(record: CrashRecord): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(record, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }

  /** The pending crash, if any. A corrupt file is logged and removed: it must never stop the sensor. */
  load(logger?: Logger): CrashReport | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger?.warn({ file: this.path, err: (err as Error).message }, 'cannot read the crash record; ignoring it');
      return undefined;
    }
    try {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      const report: Record<string, unknown> = {};
      for (const key of ['crash_id', 'file_id', 'line_number', 'thread_id', 'crashed_at', 'message']) if (parsed[key] !== undefined) report[key] = parsed[key];
      if (!Value.Check(CrashReport, report)) throw new Error('not a crash record');
      return report as CrashReport;
    } catch (err) {
      logger?.warn({ file: this.path, err: (err as Error).message }, 'corrupt crash record removed');
      this.remove();
      return undefined;
    }
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/**
 * Makes an abnormal death leave a crash record: uncaught errors, unhandled rejections and the catchable
 * fatal signals. Called once by `picket sensor`; the ReferenceSensor class never installs process-wide
 * handlers itself (tests run sensors in-process).
 */
export function installCrashHandlers(file: CrashFile, logger: Logger, exit: (code: number) => never = (code) => process.exit(code)): void {
  const die = (record: CrashRecord, code: number): never => {
    try {
      file.writeSync(record);
      logger.fatal({ crash_id: record.crash_id, where: record.where, file_id: record.file_id, line_number: record.line_number, thread_id: record.thread_id, message: record.message, file: file.path, exit_code: code }, 'sensor crashed; the crash is reported on the next start');
    } catch (err) {
      logger.fatal({ err: (err as Error).message, message: record.message }, 'sensor crashed and the crash record could not be written');
    }
    return exit(code);
  };
  process.on('uncaughtException', (err) => die(crashFromError(err), CRASH_EXIT_CODE));
  process.on('unhandledRejection', (reason) => die(crashFromError(reason), CRASH_EXIT_CODE));
  for (const signal of FATAL_SIGNALS) {
    const number = signalNumber(signal);
    process.on(signal, () => die(crashFromSignal(signal, number), 128 + number));
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return (os.constants.signals as Record<string, number>)[signal] ?? 0;
}
