// The event catalogue as a specification: the seed pages' samples validate, every event they and
// decisions.md name is in the catalogue, every documented field is enforced (removed, renamed or of the
// wrong type it is reported by its path), builders produce valid payloads, and docs/events.md is current.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import {
  catalogueDocument,
  cloudNotification,
  commandResult,
  connected,
  dataDropped,
  deletedSensor,
  disconnected,
  enrollment,
  exampleEnvelope,
  isCloudProduced,
  listEvents,
  lookupEvent,
  perOrgTick,
  quotaChanged,
  sensorClone,
  sensorCrash,
  sensorOverQuota,
  shuttingDown,
  startingUp,
  streamOf,
  sync,
  validateEvent,
  validatePayload,
  type CatalogueEntry,
  type ValidationResult,
} from '../src/catalogue/index.js';
import { renderEventsMarkdown } from '../src/catalogue/render-markdown.js';
import { ALWAYS_REQUIRED, PRODUCED_REQUIRED } from '../src/catalogue/routing.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SEED_FIXTURES = path.join(ROOT, 'test/fixtures/seeds');
const DOC_PATH = path.join(ROOT, 'docs/events.md');
/** The original seed pages, when this checkout has them beside it (they are not part of the repository). */
const SEED_PAGES_DIR = process.env.PICKET_SEED_PAGES ?? path.resolve(ROOT, '../shared/seeds');

type Json = Record<string, unknown>;

interface SeedPage {
  file: string;
  dir: string;
  headings: string[];
  samples: Record<string, string>;
}

interface Fixture {
  page: SeedPage;
  heading: string;
  eventType: string;
  text: string;
  value: Json;
}

const manifest = JSON.parse(readFileSync(path.join(SEED_FIXTURES, 'seed-pages.json'), 'utf8')) as { pages: SeedPage[] };

const fixtures: Fixture[] = manifest.pages.flatMap((page) =>
  Object.entries(page.samples).map(([heading, file]) => {
    const text = readFileSync(path.join(SEED_FIXTURES, page.dir, file), 'utf8');
    return { page, heading, eventType: file.replace(/\.json$/, ''), text, value: JSON.parse(text) as Json };
  }),
);

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where the payload of a fixture sits: seed pages show bare payloads, `{event}`, `{routing, event}` or `{record}`. */
function payloadPath(f: Fixture): string[] {
  if ('record' in f.value) return ['record'];
  if ('event' in f.value) return ['event'];
  return [];
}

function validateFixture(f: Fixture, value: Json = f.value): ValidationResult {
  if ('routing' in f.value || 'record' in f.value) return validateEvent(value);
  if ('event' in f.value) return validatePayload(f.eventType, value.event);
  return validatePayload(f.eventType, value);
}

// ---- systematic mutations ----

interface Mutation {
  name: string;
  /** The field the error must name. */
  field: string;
  apply: (value: Json) => void;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function parentOf(value: Json, parts: string[]): Json | undefined {
  let cur: unknown = value;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return isObject(cur) ? cur : undefined;
}

function flipCase(key: string): string {
  const flipped = key === key.toUpperCase() ? key.toLowerCase() : key.toUpperCase();
  return flipped === key ? `${key}_renamed` : flipped;
}

function wrongTypeOf(v: unknown): unknown {
  if (typeof v === 'string') return 12345;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return 'not an array';
  if (isObject(v)) return 'not an object';
  return 'wrong';
}

/** remove / rename / wrong type for each required field present in `value` at `parts`. */
function mutationsFor(value: Json, fieldPaths: Array<{ parts: string[]; field: string }>): Mutation[] {
  const out: Mutation[] = [];
  for (const { parts, field } of fieldPaths) {
    const parent = parentOf(value, parts);
    const key = parts[parts.length - 1]!;
    if (!parent || !(key in parent)) continue;
    const original = parent[key];
    const at = (v: Json) => parentOf(v, parts)!;
    out.push({ name: `remove ${field}`, field, apply: (v) => void delete at(v)[key] });
    out.push({
      name: `rename ${field} to ${flipCase(key)}`,
      field,
      apply: (v) => {
        const p = at(v);
        p[flipCase(key)] = p[key];
        delete p[key];
      },
    });
    out.push({ name: `${field} of the wrong type`, field, apply: (v) => void (at(v)[key] = wrongTypeOf(original)) });
  }
  return out;
}

function requiredPayloadFields(entry: CatalogueEntry, base: string[]): Array<{ parts: string[]; field: string }> {
  return entry.fields.filter((f) => f.required).map((f) => ({ parts: [...base, ...f.path.split('.')], field: `${entry.payloadKey}.${f.path}` }));
}

/** Runs every mutation and returns the ones that were not reported as an error on their field. */
function unreported(value: Json, mutations: Mutation[], validate: (v: Json) => ValidationResult): string[] {
  const misses: string[] = [];
  for (const m of mutations) {
    const mutated = clone(value);
    m.apply(mutated);
    const r = validate(mutated);
    if (r.valid || !r.errors.some((e) => e.field === m.field)) misses.push(`${m.name}: ${JSON.stringify(r.errors)}`);
  }
  return misses;
}

// ---- seed page extraction (used when the original pages are available) ----

const NOT_HEADINGS = new Set(['MENU', 'JSON']);
const HEADING_RE = /^(\*_per_[a-z_]+|[a-z]+(_[a-z]+)+|[A-Z]+(_[A-Z]+)*)$/;

/** Headings (event names on a line of their own) and the first JSON sample under each. */
function readSeedPage(text: string): { headings: string[]; samples: Record<string, unknown> } {
  const lines = text.split('\n');
  const headings: string[] = [];
  const samples: Record<string, unknown> = {};
  let current: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (HEADING_RE.test(t) && !NOT_HEADINGS.has(t)) {
      headings.push(t);
      current = t;
    } else if (t === '{' && current !== undefined && !(current in samples)) {
      let depth = 0;
      const block: string[] = [];
      for (let j = i; j < lines.length; j++) {
        block.push(lines[j]!);
        for (const ch of lines[j]!) depth += ch === '{' ? 1 : ch === '}' ? -1 : 0;
        if (depth === 0) {
          i = j;
          break;
        }
      }
      samples[current] = JSON.parse(block.join('\n'));
    }
  }
  return { headings, samples };
}

// ---- tests ----

describe('seed samples', () => {
  it('there is one fixture file per sample listed in the manifest, and nothing else', () => {
    for (const page of manifest.pages) {
      expect(readdirSync(path.join(SEED_FIXTURES, page.dir)).sort()).toEqual(Object.values(page.samples).sort());
    }
    expect(fixtures.length).toBe(18);
  });

  it.each(fixtures.map((f) => [`${f.page.dir}/${f.eventType}`, f] as const))('%s validates against the catalogue', (_name, f) => {
    const r = validateFixture(f);
    expect(r.errors).toEqual([]);
    expect(r).toMatchObject({ valid: true, known: true });
    const routing = f.value.routing;
    if (isObject(routing)) expect(routing.event_type).toBe(f.eventType);
  });

  it('every catalogue entry the seeds show a sample of has a fixture, and every fixture is such an entry', () => {
    const sampled = new Set(listEvents().filter((e) => e.seed?.hasSample).map((e) => `${e.seed!.page}:${e.seed!.heading}`));
    const fixtured = new Set(fixtures.map((f) => `${f.page.dir}:${f.heading}`));
    expect([...fixtured].sort()).toEqual([...sampled].sort());
    for (const f of fixtures) {
      const entry = lookupEvent(f.eventType);
      expect(entry, f.eventType).toBeDefined();
      expect(entry!.seed).toEqual({ page: f.page.dir, heading: f.heading, hasSample: true });
    }
  });

  it('every event named in the seed pages is in the catalogue, under the heading it has there', () => {
    const entries = listEvents();
    for (const page of manifest.pages) {
      for (const heading of page.headings) {
        const matches = entries.filter((e) => e.seed?.page === page.dir && e.seed.heading === heading);
        expect(matches.length, `${page.dir}: ${heading}`).toBeGreaterThan(0);
        if (!heading.startsWith('*')) {
          // One entry per heading, whose wire name is the heading in its wire case.
          expect(matches.map((e) => e.eventType.toUpperCase()), heading).toEqual([heading.toUpperCase()]);
        }
      }
    }
    const named = new Set(manifest.pages.flatMap((p) => p.headings.map((h) => `${p.dir}:${h}`)));
    for (const e of entries.filter((x) => x.seed)) expect(named.has(`${e.seed!.page}:${e.seed!.heading}`), e.eventType).toBe(true);
  });

  it('every field a seed sample shows is documented, and required unless decided otherwise', () => {
    // Optional by decision: a task may be sent without an investigation id.
    const OPTIONAL = new Set(['CLOUD_NOTIFICATION:NOTIFICATION.INVESTIGATION_ID']);
    const leaves = (v: Json, prefix = ''): string[] =>
      Object.entries(v).flatMap(([k, x]) => {
        const p = prefix ? `${prefix}.${k}` : k;
        return isObject(x) && Object.keys(x).length > 0 ? [p, ...leaves(x, p)] : [p];
      });
    for (const f of fixtures) {
      const entry = lookupEvent(f.eventType)!;
      const payload = payloadPath(f).length ? (f.value[payloadPath(f)[0]!] as Json) : f.value;
      for (const p of leaves(payload)) {
        const doc = entry.fields.find((x) => x.path === p);
        expect(doc, `${f.eventType}: ${p}`).toBeDefined();
        expect(doc!.required, `${f.eventType}: ${p}`).toBe(!OPTIONAL.has(`${f.eventType}:${p}`));
      }
    }
  });

  it.skipIf(!existsSync(SEED_PAGES_DIR))('the manifest and fixtures are exactly what the original seed pages contain', () => {
    for (const page of manifest.pages) {
      const { headings, samples } = readSeedPage(readFileSync(path.join(SEED_PAGES_DIR, page.file), 'utf8'));
      expect(headings).toEqual(page.headings);
      expect(Object.keys(samples).sort()).toEqual(Object.keys(page.samples).sort());
      for (const [heading, sample] of Object.entries(samples)) {
        const fixture = fixtures.find((f) => f.page === page && f.heading === heading)!;
        // Same keys in the same order with the same values: the sample verbatim.
        expect(JSON.stringify(fixture.value)).toBe(JSON.stringify(sample));
      }
    }
  });
});

describe('every event decisions.md names', () => {
  const DECISIONS = [
    'enrollment', 'deleted_sensor', 'sensor_clone', 'sensor_over_quota', 'sensor_crash', 'quota_changed', 'cloud_adapter_disabled', 'ingest',
    'export_complete', 'billing_record', 'CLOUD_NOTIFICATION', 'CONNECTED', 'DISCONNECTED', 'RECEIPT', 'SEGREGATE_NETWORK', 'REJOIN_NETWORK',
    'SELF_TEST', 'SELF_TEST_RESULT', 'SHUTTING_DOWN', 'STARTING_UP', 'DATA_DROPPED', 'RUN', 'SET_PERFORMANCE_MODE', 'SYNC', 'UNLOAD_KERNEL',
    'UPDATE', 'BACKOFF', 'ACK_MESSAGES',
  ];
  const FREQUENCIES = ['30m', '1h', '3h', '6h', '12h', '24h', '168h'];
  const SCHEDULE = FREQUENCIES.flatMap((f) => ['org', 'sensor', 'cloud_adapter'].map((s) => `${f}_per_${s}`));

  it('is in the catalogue under its exact wire name, plus the audit event of the audit stream', () => {
    for (const name of [...DECISIONS, ...SCHEDULE, 'audit']) expect(lookupEvent(name), name).toBeDefined();
    expect(listEvents().map((e) => e.eventType).sort()).toEqual([...DECISIONS, ...SCHEDULE, 'audit'].sort());
    expect(lookupEvent('ENROLLMENT')).toBeUndefined();
    expect(lookupEvent('disconnected')).toBeUndefined();
  });

  it('has the stream and producer of decisions.md §2', () => {
    const expected: Record<string, [string | undefined, 'sensor' | 'cloud']> = {
      STARTING_UP: ['event', 'sensor'], SHUTTING_DOWN: ['event', 'sensor'], CONNECTED: ['event', 'cloud'], DISCONNECTED: ['event', 'cloud'],
      SYNC: ['event', 'sensor'], CLOUD_NOTIFICATION: ['event', 'sensor'], RECEIPT: ['event', 'sensor'], SEGREGATE_NETWORK: ['event', 'sensor'],
      REJOIN_NETWORK: ['event', 'sensor'], RUN: ['event', 'sensor'], SET_PERFORMANCE_MODE: ['event', 'sensor'], UNLOAD_KERNEL: ['event', 'sensor'],
      UPDATE: ['event', 'sensor'], SELF_TEST_RESULT: ['event', 'sensor'], SELF_TEST: ['event', 'cloud'], DATA_DROPPED: ['event', 'sensor'],
      BACKOFF: ['event', 'cloud'], ACK_MESSAGES: [undefined, 'cloud'], enrollment: ['deployment', 'cloud'], deleted_sensor: ['deployment', 'cloud'],
      sensor_clone: ['deployment', 'cloud'], sensor_over_quota: ['deployment', 'cloud'], sensor_crash: ['deployment', 'cloud'],
      quota_changed: ['deployment', 'cloud'], cloud_adapter_disabled: ['deployment', 'cloud'], ingest: ['artifact', 'cloud'],
      export_complete: ['artifact', 'cloud'], billing_record: ['billing', 'cloud'], audit: ['audit', 'cloud'],
    };
    for (const name of SCHEDULE) expected[name] = ['schedule', 'cloud'];
    for (const [name, [stream, producer]] of Object.entries(expected)) {
      expect(streamOf(name), name).toBe(stream);
      expect(lookupEvent(name)!.producer, name).toBe(producer);
      expect(isCloudProduced(name), name).toBe(producer === 'cloud');
    }
  });

  it('sensors may send telemetry the catalogue does not know, but never a schedule-style name', () => {
    expect(isCloudProduced('NEW_PROCESS')).toBe(false);
    expect(streamOf('NEW_PROCESS')).toBeUndefined();
    expect(isCloudProduced('2h_per_org')).toBe(true);
    expect(isCloudProduced('quota_changed')).toBe(true);
  });
});

describe('entries', () => {
  it.each(listEvents().map((e) => [e.eventType, e] as const))('%s is documented: trigger, description, every field described', (_t, e) => {
    expect(e.trigger).toMatch(/^[A-Z`<].*\.$/);
    expect(e.description.length).toBeGreaterThan(10);
    expect(e.fields.length).toBeGreaterThan(0);
    for (const f of e.fields) {
      expect(f.description, f.path).not.toBe('');
      expect(f.type, f.path).not.toBe('any');
    }
  });

  it.each(listEvents().map((e) => [e.eventType, e] as const))('the %s example is a valid event as Picket produces it', (_t, e) => {
    const r = validateEvent(exampleEnvelope(e), { produced: true });
    expect(r.errors).toEqual([]);
    expect(r.known).toBe(true);
  });
});

describe('mutations of documented fields are reported by their path', () => {
  it.each(fixtures.map((f) => [`${f.page.dir}/${f.eventType}`, f] as const))('seed sample %s', (_name, f) => {
    const entry = lookupEvent(f.eventType)!;
    const fields = requiredPayloadFields(entry, payloadPath(f));
    if (isObject(f.value.routing)) fields.push(...ALWAYS_REQUIRED.map((n) => ({ parts: ['routing', n], field: `routing.${n}` })));
    const mutations = mutationsFor(f.value, fields);
    // Every required field of the schema that the sample carries is mutated three ways.
    expect(mutations.length).toBeGreaterThanOrEqual(3 * entry.fields.filter((x) => x.required && !x.path.includes('.')).length);
    expect(unreported(f.value, mutations, (v) => validateFixture(f, v))).toEqual([]);
  });

  it.each(listEvents().map((e) => [e.eventType, e] as const))('example of %s, including its produced routing', (_t, e) => {
    const envelope = exampleEnvelope(e);
    const fields = [
      ...requiredPayloadFields(e, [e.payloadKey]),
      ...PRODUCED_REQUIRED[e.routingScope].map((n) => ({ parts: ['routing', n], field: `routing.${n}` })),
    ];
    const mutations = mutationsFor(envelope, fields);
    expect(mutations.length).toBe(3 * fields.length);
    expect(unreported(envelope, mutations, (v) => validateEvent(v, { produced: true }))).toEqual([]);
  });

  it('a missing nested field is named by its own path, not its parent', () => {
    const r = validatePayload('sensor_crash', { crash_context: { LINE_NUMBER: 1, THREAD_ID: 2 } });
    expect(r.errors).toEqual([{ field: 'event.crash_context.FILE_ID', message: 'required field is missing' }]);
  });

  it('messages say what was expected and what came', () => {
    expect(validatePayload('enrollment', { public_ip: 1, internal_ip: '10.0.0.1', host_name: 'h' }).errors).toEqual([
      { field: 'event.public_ip', message: 'must be a string, got the integer 1' },
    ]);
    expect(validatePayload('CONNECTED', { HOST_NAME: 'h', IS_SEGREGATED: 2, KERNEL_ACQ_AVAILABLE: 1, MAC_ADDRESS: 'nope' }).errors).toEqual([
      { field: 'event.IS_SEGREGATED', message: 'must be 0 or 1, got the integer 2' },
      { field: 'event.MAC_ADDRESS', message: 'must be a MAC address such as 42-01-0A-80-00-02 (or "" when the host has none), got a string ("nope")' },
    ]);
    expect(validatePayload('STARTING_UP', { STARTING_UP: { ts: 1455674775000 } }).errors).toEqual([
      { field: 'event.STARTING_UP.ts', message: 'must be Unix seconds; 1455674775000 looks like milliseconds' },
    ]);
    expect(validatePayload('deleted_sensor', { denied_for: '30 days' }).errors[0]!.message).toMatch(/duration such as 720h0m0s/);
    expect(validatePayload('billing_record', { cat: 'x', k: 'k', oid: 'nope', record_id: 'r', ts: '2024-05-30 00:44:37', v: 1 }).errors).toEqual([
      { field: 'record.oid', message: 'must be a UUID, got a string ("nope")' },
    ]);
  });
});

describe('payload builders', () => {
  const TS = 1717029877;

  it('write the lifecycle payloads in the shapes of the seed and decisions.md', () => {
    expect(startingUp(TS)).toEqual({ STARTING_UP: { ts: TS }, ts: TS });
    expect(shuttingDown(TS)).toEqual({ SHUTTING_DOWN: { ts: TS }, ts: TS });
    expect(sync(TS)).toEqual({ ts: TS });
    expect(disconnected(TS, 'timeout')).toEqual({ DISCONNECTED: {}, ts: TS, reason: 'timeout' });
    expect(dataDropped({ droppedEvents: 10, droppedBytes: 2048, sinceMs: 1717029000999, tsSec: TS })).toEqual({ dropped_events: 10, dropped_bytes: 2048, since: 1717029000, ts: TS });
    expect(enrollment({ publicIp: '1.2.3.4', internalIp: '10.0.0.2', hostname: 'h' })).toEqual({ public_ip: '1.2.3.4', internal_ip: '10.0.0.2', host_name: 'h' });
    expect(connected({ hostname: 'h', isSegregated: true, kernel: false, mac: '42:01:0a:80:00:02' })).toEqual({
      HOST_NAME: 'h', IS_SEGREGATED: 1, KERNEL_ACQ_AVAILABLE: 0, MAC_ADDRESS: '42-01-0A-80-00-02',
    });
  });

  it('produce payloads that validate, for every builder', () => {
    const built: Array<[string, unknown]> = [
      ['STARTING_UP', startingUp(TS)],
      ['SHUTTING_DOWN', shuttingDown(TS)],
      ['SYNC', sync(TS)],
      ['CONNECTED', connected({ hostname: 'h', isSegregated: false, kernel: true, mac: '020000000001' })],
      ['CONNECTED', connected({ hostname: 'h', isSegregated: false, kernel: true, mac: 'not a mac' })],
      ['DISCONNECTED', disconnected(TS, 'connection lost')],
      ['DATA_DROPPED', dataDropped({ droppedEvents: 0, droppedBytes: 0, sinceMs: Date.now(), tsSec: Math.floor(Date.now() / 1000) })],
      ['enrollment', enrollment({ publicIp: '::1', internalIp: '', hostname: 'h' })],
      ['sensor_over_quota', sensorOverQuota({ publicIp: '1.2.3.4', internalIp: '10.0.0.2', hostname: 'h' })],
      ['deleted_sensor', deletedSensor()],
      ['sensor_clone', sensorClone({ previousHostname: 'a', newHostname: 'b' })],
      ['sensor_crash', sensorCrash({ fileId: 1, lineNumber: 2, threadId: 3 })],
      ['quota_changed', quotaChanged({ oldQuota: null, newQuota: 5 })],
      ['RECEIPT', commandResult(87, 'bad arguments')],
      ['SEGREGATE_NETWORK', commandResult(0)],
      ['CLOUD_NOTIFICATION', cloudNotification({ notificationId: 'run', notification: {}, oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db', sid: 'a75cc927-bf28-4178-a42d-25ecc8a6be81', iid: null, plat: 0x20000000, arch: 2, expiry: 0, error: 87 })],
      ['24h_per_org', perOrgTick('24h')],
    ];
    for (const [type, payload] of built) expect(validatePayload(type, payload), `${type} ${JSON.stringify(payload)}`).toEqual({ valid: true, known: true, errors: [] });
    expect(perOrgTick('24h')).toEqual({ frequency: 86400 });
  });
});

describe('routing', () => {
  const base = () => clone(exampleEnvelope(lookupEvent('CONNECTED')!)) as { routing: Json; event: Json };

  it('event_time in seconds is rejected for events Picket produced', () => {
    const e = base();
    e.routing.event_time = 1717029877;
    const r = validateEvent(e, { produced: true });
    expect(r.valid).toBe(false);
    expect(r.errors).toEqual([{ field: 'routing.event_time', message: 'must be Unix milliseconds; 1717029877 looks like seconds' }]);
    e.routing.event_time = 1717029877.5;
    expect(validateEvent(e).errors.map((x) => x.field)).toEqual(['routing.event_time']);
  });

  it('event_id must be a UUID and tags an array', () => {
    const e = base();
    e.routing.event_id = 'evt-1';
    e.routing.tags = 'prod,web';
    for (const produced of [true, false]) {
      expect(validateEvent(e, { produced }).errors.map((x) => x.field).sort()).toEqual(['routing.event_id', 'routing.tags']);
    }
    e.routing.tags = ['prod', 3];
    e.routing.event_id = 'a75cc927-bf28-4178-a42d-25ecc8a6be81';
    expect(validateEvent(e).errors).toEqual([{ field: 'routing.tags.1', message: 'must be a string, got the integer 3' }]);
  });

  it('a produced sensor event needs the full sensor routing and no unknown routing field', () => {
    const e = base();
    delete e.routing.event_id;
    delete e.routing.tags;
    e.routing.stream = 'event';
    expect(validateEvent(e).valid).toBe(true);
    expect(validateEvent(e, { produced: true }).errors).toEqual([
      { field: 'routing.tags', message: 'required field is missing' },
      { field: 'routing.event_id', message: 'required field is missing' },
      { field: 'routing.stream', message: 'is not a routing field' },
    ]);
  });

  it('routing and payload must be objects; an unknown type passes with any object payload', () => {
    expect(validateEvent([])).toMatchObject({ valid: false, errors: [{ field: 'envelope' }] });
    expect(validateEvent({ event: {} }).errors).toEqual([{ field: 'routing', message: 'required field is missing' }]);
    const e = base();
    e.routing.event_type = 'NEW_PROCESS';
    e.event = { FILE_PATH: '/usr/bin/bash', ANYTHING: [1, 2] };
    expect(validateEvent(e, { produced: true })).toEqual({ valid: true, known: false, errors: [] });
    (e as Json).event = [1];
    expect(validateEvent(e, { produced: true })).toEqual({ valid: false, known: false, errors: [{ field: 'event', message: 'must be an object, got an array' }] });
    expect(validatePayload('NEW_PROCESS', 'x')).toEqual({ valid: false, known: false, errors: [{ field: 'event', message: 'must be an object, got a string ("x")' }] });
  });

  it('opts.eventType forces the payload schema', () => {
    const e = base();
    expect(validateEvent(e, { eventType: 'SYNC' }).errors).toEqual([{ field: 'event.ts', message: 'required field is missing' }]);
  });

  it('billing_record is {record, routing?}: routing optional from elsewhere, required from Picket', () => {
    const sample = fixtures.find((f) => f.eventType === 'billing_record')!.value;
    expect(validateEvent(sample)).toEqual({ valid: true, known: true, errors: [] });
    expect(validateEvent(sample, { produced: true }).errors).toEqual([{ field: 'routing', message: 'required field is missing' }]);
    expect(validateEvent({ routing: { oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db', event_type: 'billing_record', event_time: 1717029877123 }, event: {} }).errors).toEqual([
      { field: 'record', message: 'required field is missing' },
    ]);
  });

  it('a produced schedule tick carries the period of its name (the seed sample of 1h_per_org does not)', () => {
    const sample = fixtures.find((f) => f.eventType === '1h_per_org')!.value;
    expect(validateEvent(sample).valid).toBe(true);
    const produced = clone(exampleEnvelope(lookupEvent('1h_per_org')!)) as { event: Json };
    expect(validateEvent(produced, { produced: true }).valid).toBe(true);
    produced.event.frequency = 86400;
    expect(validateEvent(produced, { produced: true }).errors).toEqual([{ field: 'event.frequency', message: 'must be 3600 for 1h_per_org, got 86400' }]);
  });
});

describe('catalogue document', () => {
  it('is plain JSON with every event, its stream, producer, trigger, fields and schema', () => {
    const doc = catalogueDocument() as { version: number; streams: Array<{ name: string }>; routing: { schema: object; fields: unknown[] }; events: Json[] };
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    expect(doc.version).toBeGreaterThanOrEqual(1);
    expect(doc.streams.map((s) => s.name).sort()).toEqual(['artifact', 'audit', 'billing', 'deployment', 'event', 'schedule']);
    expect(doc.routing.fields.length).toBeGreaterThan(15);
    expect(doc.events.map((e) => e.event_type)).toEqual(listEvents().map((e) => e.eventType));
    for (const e of doc.events) expect(Object.keys(e)).toEqual(expect.arrayContaining(['event_type', 'stream', 'producer', 'trigger', 'fields', 'schema', 'example']));
  });

  it('its schemas stand alone: a fresh Ajv validates the seed samples and rejects a broken one', () => {
    const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => Ajv;
    const ajv = addFormats(new Ajv({ strict: false }));
    const doc = catalogueDocument() as { routing: { schema: object }; events: Array<{ event_type: string; schema: object }> };
    const routing = ajv.compile(doc.routing.schema);
    for (const f of fixtures) {
      const schema = doc.events.find((e) => e.event_type === f.eventType)!.schema;
      const payload = payloadPath(f).length ? f.value[payloadPath(f)[0]!] : f.value;
      expect(ajv.validate(schema, payload), f.eventType).toBe(true);
      if (isObject(f.value.routing)) expect(routing(f.value.routing), f.eventType).toBe(true);
    }
    expect(ajv.validate(doc.events.find((e) => e.event_type === 'CONNECTED')!.schema, { HOST_NAME: 'h' })).toBe(false);
  });
});

describe('docs/events.md', () => {
  it('is generated from the catalogue and up to date', () => {
    const rendered = renderEventsMarkdown();
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC_PATH, rendered);
    const current = existsSync(DOC_PATH) ? readFileSync(DOC_PATH, 'utf8') : '';
    expect(current === rendered, 'docs/events.md is stale: regenerate it with UPDATE_DOCS=1 npx vitest run test/catalogue.test.ts').toBe(true);
  });

  it('lists every event with its producer, stream, trigger and fields', () => {
    const md = renderEventsMarkdown();
    for (const e of listEvents()) {
      expect(md).toContain(`\`${e.eventType}\``);
      expect(md).toContain(e.trigger.replace(/\|/g, '\\|'));
      for (const f of e.fields) expect(md).toContain(`\`${e.payloadKey}.${f.path}\``);
    }
    expect(md).toMatch(/^# Events\n/);
    expect(md).toContain('## Routing fields');
  });
});
