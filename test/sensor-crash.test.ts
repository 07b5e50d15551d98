// Crash records of the reference sensor: what is written when it dies, how it is read back, and that a
// damaged record never stops a sensor.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CrashReport } from '../src/protocol/messages.js';
import { Value } from 'typebox/value';
import { CrashFile, crashFromError, crashFromSignal, fnv1a32, topFrame } from '../src/sensor/crash-record.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'picket-crash-'));
  dirs.push(d);
  return d;
}

describe('crash records', () => {
  it('FNV-1a 32 is the reference function (stable FILE_IDs across hosts)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('takes the top frame of a stack, relative to the package, skipping node internals', () => {
    const stack = [
      'Error: boom',
      '    at node:internal/process/task_queues:95:5',
      `    at crashOnPurpose (file://${path.resolve('dist/sensor/debug-crash.js')}:17:11)`,
      '    at other (/elsewhere/x.js:1:1)',
    ].join('\n');
    expect(topFrame(stack)).toEqual({ file: 'dist/sensor/debug-crash.js', line: 17 });
    expect(topFrame('Error: no frames')).toBeUndefined();
  });

  it('describes an uncaught error and a fatal signal with the three context fields', () => {
    const err = crashFromError(new TypeError('x is undefined'));
    expect(Value.Check(CrashReport, { crash_id: err.crash_id, file_id: err.file_id, line_number: err.line_number, thread_id: err.thread_id, crashed_at: err.crashed_at, message: err.message })).toBe(true);
    expect(err.where).toMatch(/^test\/sensor-crash\.test\.ts:\d+$/);
    expect(err.file_id).toBe(fnv1a32('test/sensor-crash.test.ts'));
    expect(err.line_number).toBeGreaterThan(0);
    expect(err.thread_id).toBe(process.pid);
    expect(err.message).toBe('TypeError: x is undefined');
    expect(crashFromError('a string')).toMatchObject({ message: 'Error: a string' });
    expect(crashFromSignal('SIGSEGV', 11)).toMatchObject({ file_id: 0, line_number: 11, message: 'fatal signal SIGSEGV', where: 'SIGSEGV' });
  });

  it('writes the record readable by its user only, loads the report part, and removes it', () => {
    const d = dir();
    const file = new CrashFile(d);
    expect(file.load()).toBeUndefined();
    const record = crashFromError(new Error('boom'));
    file.writeSync(record);
    expect(statSync(file.path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file.path, 'utf8'))).toMatchObject({ where: record.where, stack: expect.stringContaining('boom') });
    expect(file.load()).toEqual({ crash_id: record.crash_id, file_id: record.file_id, line_number: record.line_number, thread_id: record.thread_id, crashed_at: record.crashed_at, message: 'Error: boom' });
    file.remove();
    expect(existsSync(file.path)).toBe(false);
    file.remove();
  });

  it('removes a corrupt or foreign record instead of failing', () => {
    const d = dir();
    const file = new CrashFile(d);
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as unknown as Parameters<CrashFile['load']>[0];
    writeFileSync(file.path, '{not json');
    expect(file.load(logger)).toBeUndefined();
    expect(existsSync(file.path)).toBe(false);
    writeFileSync(file.path, JSON.stringify({ crash_id: 'not-a-uuid', file_id: -1 }));
    expect(file.load(logger)).toBeUndefined();
    expect(existsSync(file.path)).toBe(false);
    expect(warnings).toHaveLength(2);
  });
});
