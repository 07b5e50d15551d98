// The adapter's file tailer on real files, into a real disk buffer: every line once, in order, across
// rotation by rename (with the writer still writing the old file), copytruncate, and restarts (also
// when the file was rotated or truncated while the adapter was stopped).
import { appendFileSync, closeSync, copyFileSync, mkdtempSync, openSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBuffer } from '../src/adapter/disk-buffer.js';
import { FileTailer } from '../src/adapter/sources/file-tailer.js';
import { LineEncoder } from '../src/adapter/sources/line-encoder.js';
import { silentLogger } from '../src/observability/logger.js';
import { waitFor } from './harness/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-tail-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Run {
  buffer: DiskBuffer;
  tailer: FileTailer;
  /** Stops the tailer and closes the buffer, like a clean shutdown. */
  stop(): Promise<void>;
}

async function tail(stateDir: string, file: string, options: { readFrom?: 'beginning' | 'end'; format?: 'text' | 'json' } = {}): Promise<Run> {
  const buffer = DiskBuffer.open({ stateDir, maxBytes: 64 * 1024 * 1024, fsyncIntervalMs: 1000, logger: silentLogger() });
  const tailer = new FileTailer({
    path: file, sink: buffer, encoder: new LineEncoder({ format: options.format ?? 'text', stampReadTime: true, logger: silentLogger() }), logger: silentLogger(),
    pollIntervalMs: 20, readFrom: options.readFrom ?? 'beginning', maxLineBytes: 1024, rotateGraceMs: 150,
  });
  await tailer.start();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await tailer.stop();
    buffer.close();
  };
  cleanups.push(stop);
  return { buffer, tailer, stop };
}

/** Every buffered, unacknowledged message's text, in x order. */
function texts(buffer: DiskBuffer): string[] {
  buffer.flush();
  const out: string[] = [];
  for (let m = buffer.nextAfter(0); m; m = buffer.nextAfter(m.x)) out.push(m.fields.t ?? JSON.stringify(m.fields.j));
  return out;
}

function lines(prefix: string, from: number, to: number): string {
  let s = '';
  for (let i = from; i <= to; i++) s += `${prefix} ${i}\n`;
  return s;
}

function numbered(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${prefix} ${from + i}`);
}

async function until(buffer: DiskBuffer, expected: string[]): Promise<void> {
  await waitFor(() => texts(buffer).length >= expected.length, { message: `${expected.length} lines buffered` });
  expect(texts(buffer)).toEqual(expected);
}

describe('file tailer', () => {
  it('follows a growing file and holds a partial line until its LF', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    writeFileSync(file, 'first\r\nsecond\n\nthi');
    const { buffer } = await tail(path.join(dir, 'state'), file);
    await until(buffer, ['first', 'second']);
    appendFileSync(file, 'rd\nfourth\n');
    await until(buffer, ['first', 'second', 'third', 'fourth']);
  });

  it('reads a file that does not exist yet from its start once it appears', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'later.log');
    const { buffer } = await tail(path.join(dir, 'state'), file);
    writeFileSync(file, lines('line', 1, 3));
    await until(buffer, numbered('line', 1, 3));
  });

  it('survives rotation by rename while the writer still writes the old file: every line once, in order', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    const old = openSync(file, 'a');
    writeSync(old, lines('line', 1, 5));
    const { buffer } = await tail(path.join(dir, 'state'), file);
    await until(buffer, numbered('line', 1, 5));
    writeSync(old, lines('line', 6, 500));
    renameSync(file, `${file}.1`);
    // The application has not reopened its log yet: these still go to the renamed file.
    writeSync(old, lines('line', 501, 600));
    // Its last line has no LF: shipped once the old file is left for the new one.
    writeSync(old, 'line 601');
    closeSync(old);
    writeFileSync(file, lines('line', 602, 700));
    await until(buffer, numbered('line', 1, 700));
    // Another rotation, with the adapter caught up.
    renameSync(file, `${file}.2`);
    writeFileSync(file, lines('line', 701, 750));
    await until(buffer, numbered('line', 1, 750));
    expect(buffer.size).toBe(750);
  });

  it('survives copytruncate, also when the file is refilled before the next look at it', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    writeFileSync(file, lines('old', 1, 50));
    const { buffer, tailer } = await tail(path.join(dir, 'state'), file);
    await until(buffer, numbered('old', 1, 50));
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    appendFileSync(file, lines('new', 1, 10));
    await until(buffer, [...numbered('old', 1, 50), ...numbered('new', 1, 10)]);

    // Truncated and refilled past the old size in one go: only the first bytes tell.
    copyFileSync(file, `${file}.2`);
    writeFileSync(file, lines('newer', 1, 100));
    await until(buffer, [...numbered('old', 1, 50), ...numbered('new', 1, 10), ...numbered('newer', 1, 100)]);
    expect(tailer.stats().truncations).toBe(2);
  });

  it('resumes after a restart exactly after the last line it buffered', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    const state = path.join(dir, 'state');
    writeFileSync(file, lines('line', 1, 30));
    const first = await tail(state, file);
    await until(first.buffer, numbered('line', 1, 30));
    // The cloud acknowledged the first ten.
    first.buffer.release(10);
    await first.stop();
    appendFileSync(file, lines('line', 31, 40));

    const second = await tail(state, file);
    // Unacknowledged lines come back from the buffer with their x; new lines are read once.
    await until(second.buffer, numbered('line', 11, 40));
    expect(second.buffer.firstX).toBe(11);
  });

  it('after a restart, finishes a file rotated while it was stopped, then reads the new one', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    const state = path.join(dir, 'state');
    writeFileSync(file, lines('line', 1, 20));
    const first = await tail(state, file);
    await until(first.buffer, numbered('line', 1, 20));
    first.buffer.release(20);
    await first.stop();
    appendFileSync(file, lines('line', 21, 25));
    renameSync(file, `${file}.1`);
    writeFileSync(file, lines('line', 26, 30));

    const second = await tail(state, file);
    await until(second.buffer, numbered('line', 21, 30));
  });

  it('after a restart, reads a file truncated while it was stopped from its start', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    const state = path.join(dir, 'state');
    writeFileSync(file, lines('old', 1, 20));
    const first = await tail(state, file);
    await until(first.buffer, numbered('old', 1, 20));
    first.buffer.release(20);
    await first.stop();
    writeFileSync(file, lines('new', 1, 30));

    const second = await tail(state, file);
    await until(second.buffer, numbered('new', 1, 30));
  });

  it('with --read-from end, starts a new file after its last complete line', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    writeFileSync(file, lines('history', 1, 10));
    const { buffer } = await tail(path.join(dir, 'state'), file, { readFrom: 'end' });
    appendFileSync(file, lines('live', 1, 2));
    await until(buffer, numbered('live', 1, 2));
  });

  it('ships JSON lines as objects, and other lines as text', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.json');
    writeFileSync(file, '{"level":"info","msg":"up"}\nnot json\n[1,2]\n');
    const { buffer } = await tail(path.join(dir, 'state'), file, { format: 'json' });
    await until(buffer, ['{"level":"info","msg":"up"}', 'not json', '[1,2]']);
    buffer.flush();
    expect(buffer.nextAfter(0)!.fields.j).toEqual({ level: 'info', msg: 'up' });
    expect(buffer.nextAfter(1)!.fields.t).toBe('not json');
  });
});
