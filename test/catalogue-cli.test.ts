// `picket events schema` and `picket events validate`, driven through commander with injected stdio,
// as the `events` command registers them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { catalogueDocument, exampleEnvelope, lookupEvent } from '../src/catalogue/index.js';
import { registerCatalogueCommands } from '../src/cli/commands/events-catalogue.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (rel: string): unknown => JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/seeds', rel), 'utf8'));

interface Run {
  stdout: string;
  stderr: string;
  code: number | undefined;
}

function sink(chunks: string[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
}

/** Runs `events <args>` with `input` on stdin; `parentOptions` adds options to the parent `events` command. */
async function run(args: string[], input = '', parentOptions: string[] = []): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  let code: number | undefined;
  const program = new Command().exitOverride();
  const events = program.command('events');
  for (const o of parentOptions) events.option(o);
  registerCatalogueCommands(events, { stdin: Readable.from([input]), stdout: sink(out), stderr: sink(err), exit: (c) => (code = c) });
  await program.parseAsync(['events', ...args], { from: 'user' });
  return { stdout: out.join(''), stderr: err.join(''), code };
}

const line = (v: unknown): string => JSON.stringify(v);
const connected = () => JSON.parse(JSON.stringify(exampleEnvelope(lookupEvent('CONNECTED')!))) as { routing: Record<string, unknown>; event: Record<string, unknown> };

describe('picket events schema', () => {
  it('prints the catalogue document as pretty JSON', async () => {
    const r = await run(['schema']);
    expect(JSON.parse(r.stdout)).toEqual(catalogueDocument());
    expect(r.stdout).toContain('\n  "version": 1,');
    expect(r.code).toBe(0);
  });
});

describe('picket events validate', () => {
  it('reports each line, skips blank lines, fails on invalid and unparseable lines, and summarises on stderr', async () => {
    const broken = connected();
    delete broken.event.HOST_NAME;
    const input = [line(connected()), '', line(broken), '{"routing": nope', line(fixture('platform-events/billing_record.json')), '   '].join('\n');
    const r = await run(['validate'], input);
    expect(r.stdout.split('\n')).toEqual([
      'line 1: valid (CONNECTED)',
      'line 3: invalid (CONNECTED): event.HOST_NAME: required field is missing',
      expect.stringMatching(/^line 4: invalid \(unknown type\): line: not valid JSON: /),
      'line 5: valid (billing_record)',
      '',
    ]);
    expect(r.stderr).toBe('4 events: 2 valid, 2 invalid\n');
    expect(r.code).toBe(1);
  });

  it('exits 0 when every line is valid, including CRLF input and types not in the catalogue', async () => {
    const telemetry = connected();
    telemetry.routing.event_type = 'NEW_PROCESS';
    telemetry.event = { FILE_PATH: '/usr/bin/bash' };
    const r = await run(['validate'], `${line(fixture('platform-events/enrollment.json'))}\r\n${line(telemetry)}\r\n`);
    expect(r.stdout).toBe('line 1: valid (enrollment)\nline 2: valid (NEW_PROCESS)\n');
    expect(r.stderr).toBe('2 events: 2 valid (1 of a type not in the catalogue: only the envelope was checked), 0 invalid\n');
    expect(r.code).toBe(0);
  });

  it('lists every error of a line', async () => {
    const e = connected();
    e.routing.tags = 'prod';
    e.event.IS_SEGREGATED = true;
    const r = await run(['validate'], line(e));
    expect(r.stdout).toBe('line 1: invalid (CONNECTED): routing.tags: must be an array, got a string ("prod"); event.IS_SEGREGATED: must be an integer, got the boolean true\n');
  });

  it('--type forces the event type, and takes lines without routing as bare payloads', async () => {
    const samples = [fixture('sensor-events/STARTING_UP.json'), fixture('sensor-events/SHUTTING_DOWN.json')].map(line).join('\n');
    const asStartingUp = await run(['validate', '--type', 'STARTING_UP'], samples);
    expect(asStartingUp.stdout).toBe('line 1: valid (STARTING_UP)\nline 2: invalid (STARTING_UP): event.STARTING_UP: required field is missing\n');
    expect(asStartingUp.code).toBe(1);
    const envelope = await run(['validate', '--type', 'SYNC'], line(connected()));
    expect(envelope.stdout).toBe('line 1: invalid (SYNC): event.ts: required field is missing\n');
  });

  it('--json prints one result object per line', async () => {
    const e = connected();
    e.routing.event_id = 'not-a-uuid';
    const r = await run(['validate', '--json'], [line(connected()), line(e), 'nope'].join('\n'));
    const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(results).toEqual([
      { line: 1, valid: true, event_type: 'CONNECTED', known: true, errors: [] },
      { line: 2, valid: false, event_type: 'CONNECTED', known: true, errors: [{ field: 'routing.event_id', message: 'must be a UUID, got a string ("not-a-uuid")' }] },
      { line: 3, valid: false, event_type: null, known: false, errors: [{ field: 'line', message: expect.stringMatching(/^not valid JSON: /) }] },
    ]);
    expect(r.code).toBe(1);
  });

  it('--produced holds the events to what Picket writes (event_time in ms)', async () => {
    const e = connected();
    e.routing.event_time = 1717029877;
    expect((await run(['validate'], line(e))).code).toBe(0);
    const strict = await run(['validate', '--produced'], line(e));
    expect(strict.stdout).toBe('line 1: invalid (CONNECTED): routing.event_time: must be Unix milliseconds; 1717029877 looks like seconds\n');
    expect(strict.code).toBe(1);
  });

  it('still works when the parent events command defines --json and --type itself', async () => {
    const r = await run(['validate', '--json', '--type', 'CONNECTED'], line(connected()), ['--json', '--type <event_type>']);
    expect(JSON.parse(r.stdout)).toMatchObject({ line: 1, valid: true, event_type: 'CONNECTED' });
  });

  it('empty input is valid', async () => {
    const r = await run(['validate'], '');
    expect(r).toEqual({ stdout: '', stderr: '0 events: 0 valid, 0 invalid\n', code: 0 });
  });
});
