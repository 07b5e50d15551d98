// The file output module on real files: JSON lines, fsynced batches, rotation by size and by age, gzip
// of rotated files, and a relative path kept inside <data dir>/outputs/.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { fileModule, rotatedName } from '../src/sinks/outputs/modules/file.js';
import type { OutputRecord } from '../src/sinks/outputs/output-module.js';
import { waitFor } from './harness/wait.js';

function records(from: number, n: number, pad = 0): OutputRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const body = { routing: { event_type: 'T' }, event: { n: from + i, pad: 'x'.repeat(pad) } };
    return { seq: from + i, oid: 'o', sid: null, event_type: 'T', event_time: 0, body, json: JSON.stringify(body) };
  });
}

function readAll(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync(dir).sort()) {
    const raw = readFileSync(path.join(dir, name));
    const text = name.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    for (const line of text.split('\n')) if (line) out.push((JSON.parse(line) as { event: { n: number } }).event.n);
  }
  return out.sort((a, b) => a - b);
}

describe('file output module', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const dataDir = (): string => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'picket-file-out-'));
    dirs.push(d);
    return d;
  };

  it('appends JSON lines under <data>/outputs and rotates by size, gzipping rotated files', async () => {
    const data = dataDir();
    const m = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: 'sub/events.jsonl', max_bytes: 4096, is_compression: true } });
    for (let b = 0; b < 10; b++) await m.send(records(b * 10, 10, 50));
    await m.close();
    const dir = path.join(data, 'outputs', 'sub');
    const files = readdirSync(dir);
    expect(files).toContain('events.jsonl');
    const rotated = files.filter((f) => f !== 'events.jsonl');
    expect(rotated.length).toBeGreaterThanOrEqual(2);
    for (const f of rotated) expect(f).toMatch(/^events\.jsonl\.\d{8}T\d{9}Z(-\d+)?\.gz$/);
    for (const f of files) if (!f.endsWith('.gz')) expect(readFileSync(path.join(dir, f)).length).toBeLessThanOrEqual(4096);
    expect(readAll(dir)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('writes each record as one UTF-8 line, byte for byte, whatever its characters', async () => {
    const data = dataDir();
    const m = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: 'utf8.jsonl' } });
    const texts = ['plain', 'Grüße aus Köln', '日本語のパス', 'emoji 🛡️ and a lone \ud800 surrogate', 'quote " and \\ backslash'];
    const batch: OutputRecord[] = texts.map((t, i) => {
      const body = { routing: { event_type: 'T' }, event: { n: i, t } };
      return { seq: i + 1, oid: 'o', sid: null, event_type: 'T', event_time: 0, body, json: JSON.stringify(body) };
    });
    await m.send(batch);
    await m.send([]);
    await m.close();
    const raw = readFileSync(path.join(data, 'outputs', 'utf8.jsonl'));
    expect(raw.equals(Buffer.from(batch.map((r) => `${r.json}\n`).join(''), 'utf8'))).toBe(true);
    expect(raw.toString('utf8').split('\n').filter((l) => l).map((l) => (JSON.parse(l) as { event: { t: string } }).event.t)).toEqual(texts.map((t) => JSON.parse(JSON.stringify(t)) as string));
  });

  it('rotates by age (sec_per_file), without gzip when not asked', async () => {
    const data = dataDir();
    const m = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: 'aged.jsonl', sec_per_file: 1 } });
    await m.send(records(0, 5));
    const started = Date.now();
    await waitFor(() => Date.now() - started >= 1100, { intervalMs: 100, message: 'the file ages' });
    await m.send(records(5, 5));
    await m.close();
    const dir = path.join(data, 'outputs');
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(2);
    expect(files.some((f) => /^aged\.jsonl\.\d{8}T\d{9}Z$/.test(f))).toBe(true);
    expect(readAll(dir)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('after a crash it continues exactly after what the file holds: no batch twice, no half-written line', async () => {
    const data = dataDir();
    const fields = { dest_path: 'crash.jsonl' };
    const first = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields });
    expect(await first.resumeAfter!()).toBeNull();
    await first.send(records(1, 10));
    // The process "dies" here: the batch is in the file, the output's cursor never learnt it...
    const file = path.join(data, 'outputs', 'crash.jsonl');
    // ...and it was in the middle of writing the next batch.
    await import('node:fs').then((fs) => fs.appendFileSync(file, '{"routing":{"event_type":"T"},"event":{"n":11,"pa'));
    const second = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields });
    expect(await second.resumeAfter!()).toBe(10);
    await second.send(records(11, 10));
    await second.close();
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines.map((l) => (JSON.parse(l) as { event: { n: number } }).event.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // A test send's instance (no resumeAfter) does not move the position; its line, being after the last
    // recorded batch, is cut at the next start like any unrecorded write.
    const probe = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields });
    await probe.send(records(0, 1));
    await probe.close();
    const third = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields });
    expect(await third.resumeAfter!()).toBe(20);
    await third.send(records(21, 1));
    await third.close();
    const after = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { event: { n: number } }).event.n);
    expect(after).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  });

  it('records its position in one fixed-width write over the last, in a file of one record', async () => {
    const data = dataDir();
    const fields = { dest_path: 'pos.jsonl' };
    const dir = path.join(data, 'outputs');
    // A record as an earlier version wrote it (a whole file renamed over the last), longer than its JSON.
    await import('node:fs').then((fs) => {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'pos.jsonl.position'), `${JSON.stringify({ seq: 0, bytes: 0 })}${' '.repeat(100)}x`);
    });
    const m = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields });
    expect(await m.resumeAfter!()).toBeNull();
    for (let i = 0; i < 5; i++) await m.send(records(1 + i * 3, 3, i * 50));
    await m.syncPosition!();
    const raw = readFileSync(path.join(dir, 'pos.jsonl.position'), 'utf8');
    expect(raw).toHaveLength(64);
    expect(JSON.parse(raw)).toEqual({ seq: 15, bytes: readFileSync(path.join(dir, 'pos.jsonl')).length });
    await m.close();
    expect(readdirSync(dir).sort()).toEqual(['pos.jsonl', 'pos.jsonl.position']);
  });

  it('a crash during the very first batch is cut back to the file as it was', async () => {
    const data = dataDir();
    const file = path.join(data, 'outputs', 'first.jsonl');
    await import('node:fs').then((fs) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, '{"kept":"from before"}\n');
    });
    const first = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: 'first.jsonl' } });
    expect(await first.resumeAfter!()).toBeNull();
    // The first batch reached the file, then the process died before recording it.
    await import('node:fs').then((fs) => fs.appendFileSync(file, '{"event":{"n":1}}\n'));
    const second = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: 'first.jsonl' } });
    expect(await second.resumeAfter!()).toBeNull();
    await second.send(records(1, 2));
    await second.close();
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines).toEqual(['{"kept":"from before"}', ...records(1, 2).map((r) => r.json)]);
  });

  it('names rotated files by UTC time and refuses paths leaving <data>/outputs', () => {
    expect(rotatedName('/x/e.jsonl', new Date('2026-11-23T10:15:00.123Z'))).toBe('/x/e.jsonl.20261123T101500123Z');
    expect(() => fileModule.create({ name: 'f', oid: 'o', dataDir: '/data', fields: { dest_path: '../escape.jsonl' } })).toThrow(/inside <data dir>\/outputs/);
  });

  it('reports a file it cannot write with the path and the reason', async () => {
    const data = dataDir();
    const m = fileModule.create({ name: 'f', oid: 'o', dataDir: data, fields: { dest_path: path.join(data, 'missing-parent-is-a-file', 'x.jsonl') } });
    await import('node:fs').then((fs) => fs.writeFileSync(path.join(data, 'missing-parent-is-a-file'), 'not a dir'));
    await expect(m.send(records(0, 1))).rejects.toThrow(/missing-parent-is-a-file.*(ENOTDIR|EEXIST)/);
    await m.close();
  });
});
