// The adapter's disk buffer on real files: what is unacknowledged survives a restart with its x and the
// same instance_id, source positions survive with it, a torn journal tail is cut off, a full buffer drops
// its oldest messages and says so, acknowledged messages are compacted away, and one directory is one
// adapter.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBuffer, type BufferedMessage } from '../src/adapter/disk-buffer.js';
import { encodeRecord } from '../src/adapter/journal.js';
import { StateDirError, statePaths } from '../src/adapter/state-dir.js';
import { createLogger, silentLogger, type Logger } from '../src/observability/logger.js';

const dirs: string[] = [];
const open: DiskBuffer[] = [];
afterEach(() => {
  for (const b of open.splice(0)) b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-buffer-'));
  dirs.push(dir);
  return dir;
}

function openBuffer(dir: string, options: Partial<Parameters<typeof DiskBuffer.open>[0]> = {}): DiskBuffer {
  const buffer = DiskBuffer.open({ stateDir: dir, maxBytes: 1 << 20, fsyncIntervalMs: 1000, logger: silentLogger(), ...options });
  open.push(buffer);
  return buffer;
}

function close(buffer: DiskBuffer): void {
  buffer.close();
  open.splice(open.indexOf(buffer), 1);
}

/** What a client would send now: every written, unreleased message in order. */
function sendable(buffer: DiskBuffer): BufferedMessage[] {
  const out: BufferedMessage[] = [];
  for (let m = buffer.nextAfter(0); m; m = buffer.nextAfter(m.x)) out.push(m);
  return out;
}

function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('info', sink as unknown as Parameters<typeof createLogger>[1]), lines };
}

describe('disk buffer', () => {
  it('keeps unacknowledged messages, their x and the instance_id across a restart', () => {
    const dir = stateDir();
    const first = openBuffer(dir);
    const xs = Array.from({ length: 10 }, (_, i) => first.append({ t: `line ${i + 1}`, e: 'app', s: 1_763_000_000_000 + i }));
    expect(xs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    first.flush();
    expect(first.release(4)).toBe(4);
    const instanceId = first.instanceId;
    close(first);

    const second = openBuffer(dir);
    expect(second.instanceId).toBe(instanceId);
    expect(second.stats.recovered).toBe(6);
    expect(sendable(second).map((m) => [m.x, m.fields.t])).toEqual([[5, 'line 5'], [6, 'line 6'], [7, 'line 7'], [8, 'line 8'], [9, 'line 9'], [10, 'line 10']]);
    expect(sendable(second)[0]!.fields).toEqual({ t: 'line 5', e: 'app', s: 1_763_000_000_004 });
    // New messages never reuse a number given before the restart.
    expect(second.append({ t: 'after restart' })).toBeGreaterThan(10);
  });

  it('offers a message for sending only once its record is in the journal', () => {
    const buffer = openBuffer(stateDir());
    let offered = 0;
    buffer.onAvailable(() => offered++);
    buffer.append({ t: 'one' });
    expect(buffer.nextAfter(0)).toBeUndefined();
    expect(statSync(statePaths(buffer.stateDir).journal).size).toBe(0);
    buffer.flush();
    expect(offered).toBe(1);
    expect(buffer.nextAfter(0)!.fields.t).toBe('one');
    expect(statSync(statePaths(buffer.stateDir).journal).size).toBeGreaterThan(0);
  });

  it('survives a process that died without closing it, and a torn record at the end of the journal', () => {
    const dir = stateDir();
    const paths = statePaths(dir);
    const dead = DiskBuffer.open({ stateDir: dir, maxBytes: 1 << 20, fsyncIntervalMs: 1000, logger: silentLogger() });
    for (let i = 1; i <= 3; i++) dead.append({ t: `line ${i}` }, { key: 'file:/var/log/app.log', value: { offset: i * 7 } });
    dead.flush();
    // The process died mid-write: half a record at the end, and its lock file left behind.
    const torn = encodeRecord({ k: 'm', x: 4, f: { t: 'line 4' }, c: ['file:/var/log/app.log', { offset: 28 }] });
    appendFileSync(paths.journal, torn.subarray(0, torn.length - 5));
    rmSync(paths.lock);
    const { logger, lines } = capturingLogger();

    const after = openBuffer(dir, { logger });
    expect(sendable(after).map((m) => m.fields.t)).toEqual(['line 1', 'line 2', 'line 3']);
    // The position is the one of the last whole record: line 4 will be read again, and shipped once.
    expect(after.cursor('file:/var/log/app.log')).toEqual({ offset: 21 });
    expect(lines.some((l) => String(l.msg).includes('torn or corrupt'))).toBe(true);
    expect(after.instanceId).toBe(dead.instanceId);
  });

  it('never reuses a sequence number, even when the end of the journal was lost', () => {
    const dir = stateDir();
    const paths = statePaths(dir);
    const before = DiskBuffer.open({ stateDir: dir, maxBytes: 1 << 20, fsyncIntervalMs: 1000, logger: silentLogger() });
    for (let i = 1; i <= 5; i++) before.append({ t: `line ${i}` });
    before.flush();
    // A power cut took the whole unsynced journal (the messages may have reached the cloud already).
    truncateSync(paths.journal, 0);
    rmSync(paths.lock);
    const after = openBuffer(dir);
    expect(after.size).toBe(0);
    expect(after.append({ t: 'new line' })).toBeGreaterThan(5);
  });

  it('keeps source positions with the messages, and in the checkpoint once everything is acknowledged', () => {
    const dir = stateDir();
    const first = openBuffer(dir, { idleCompactBytes: 0 });
    first.append({ t: 'a' }, { key: 'file:/x', value: { offset: 2 } });
    first.append({ t: 'b' }, { key: 'file:/x', value: { offset: 4 } });
    first.setCursor({ key: 'file:/y', value: { offset: 0 } });
    first.flush();
    first.release(2);
    // Everything acknowledged: the journal is emptied and the checkpoint holds the positions.
    expect(statSync(statePaths(dir).journal).size).toBe(0);
    const checkpoint = JSON.parse(readFileSync(statePaths(dir).checkpoint, 'utf8')) as { cursors: Record<string, unknown>; released_x: number };
    expect(checkpoint.cursors).toEqual({ 'file:/x': { offset: 4 }, 'file:/y': { offset: 0 } });
    expect(checkpoint.released_x).toBe(2);
    close(first);
    const second = openBuffer(dir);
    expect(second.cursor('file:/x')).toEqual({ offset: 4 });
    expect(second.size).toBe(0);
  });

  it('rewrites a large journal down to the unacknowledged messages, keeping positions', () => {
    const dir = stateDir();
    const buffer = openBuffer(dir, { compactBytes: 4096 });
    for (let i = 1; i <= 200; i++) buffer.append({ t: `line ${i} ${'x'.repeat(40)}` }, { key: 'file:/x', value: { offset: i } });
    buffer.flush();
    const full = statSync(statePaths(dir).journal).size;
    buffer.release(190);
    const compacted = statSync(statePaths(dir).journal).size;
    expect(compacted).toBeLessThan(full / 10);
    close(buffer);
    const again = openBuffer(dir);
    expect(sendable(again).map((m) => m.x)).toEqual([191, 192, 193, 194, 195, 196, 197, 198, 199, 200]);
    expect(again.cursor('file:/x')).toEqual({ offset: 200 });
  });

  it('when full, drops the oldest messages, counts and logs them, and they stay dropped after a restart', () => {
    const dir = stateDir();
    const { logger, lines } = capturingLogger();
    const buffer = openBuffer(dir, { maxBytes: 2000, logger });
    for (let i = 1; i <= 100; i++) buffer.append({ t: `line ${i} ${'y'.repeat(30)}` });
    buffer.flush();
    expect(buffer.bytes).toBeLessThanOrEqual(2000);
    expect(buffer.stats.dropped).toBe(100 - buffer.size);
    expect(buffer.stats.dropped).toBeGreaterThan(50);
    const kept = sendable(buffer).map((m) => m.x);
    expect(kept[kept.length - 1]).toBe(100);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 101 - kept.length + i));
    expect(lines.some((l) => l.level === 50 && String(l.msg).startsWith('buffer full') && (l.dropped_total as number) >= 1)).toBe(true);
    close(buffer);
    const again = openBuffer(dir, { maxBytes: 2000 });
    expect(sendable(again).map((m) => m.x)).toEqual(kept);
  });

  it('asks sources that can wait to stop at half full, and tells them when there is room again', async () => {
    const buffer = openBuffer(stateDir(), { maxBytes: 300 });
    for (let i = 0; i < 10 && buffer.hasRoom(); i++) buffer.append({ t: `line ${i} ${'z'.repeat(20)}` });
    expect(buffer.hasRoom()).toBe(false);
    expect(buffer.bytes).toBeGreaterThanOrEqual(150);
    expect(buffer.stats.dropped).toBe(0);
    let resumed = false;
    const waiting = buffer.waitForRoom().then(() => (resumed = true));
    buffer.flush();
    expect(resumed).toBe(false);
    buffer.release(buffer.firstX!);
    await waiting;
    expect(resumed).toBe(true);
  });

  it('refuses a state directory another live adapter holds', () => {
    const dir = stateDir();
    openBuffer(dir);
    expect(() => DiskBuffer.open({ stateDir: dir, maxBytes: 1000, fsyncIntervalMs: 0, logger: silentLogger() })).toThrow(StateDirError);
    expect(() => DiskBuffer.open({ stateDir: dir, maxBytes: 1000, fsyncIntervalMs: 0, logger: silentLogger() })).toThrow(/in use by process/);
  });

  it('removes its lock on close, and takes over the lock of a dead process', () => {
    const dir = stateDir();
    const paths = statePaths(dir);
    close(openBuffer(dir));
    expect(existsSync(paths.lock)).toBe(false);
    // A pid that is not running (pids are below 2^22 on Linux).
    appendFileSync(paths.lock, '4194303\n');
    expect(() => close(openBuffer(dir))).not.toThrow();
  });
});
