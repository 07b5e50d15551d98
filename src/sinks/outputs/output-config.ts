// An output's configuration (platform-reference.md §4.2): name, module, stream, filters, shape options and
// the module's own fields. Parsed from the API's JSON or form body (the platform's clients send form
// fields with booleans as "true"/"false"), strictly: an unknown field is an error, not silently ignored.
import { OUTPUT_STREAMS, type OutputConfig, type OutputStream } from '../../domain/outputs.js';
import type { OutputModuleDescriptor } from './module-descriptor.js';
import { OutputConfigError } from './output-module.js';

export { OUTPUT_STREAMS, type OutputConfig, type OutputFilters, type OutputShape, type OutputStream } from '../../domain/outputs.js';

export type OutputInput = Omit<OutputConfig, 'oid' | 'created' | 'updated'>;

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const EVENT_TYPE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const COMMON_FIELDS = new Set(['name', 'module', 'type', 'stream', 'event_white_list', 'event_black_list', 'sid', 'tag', 'inv_id', 'sample_rate', 'is_flat', 'is_no_routing', 'is_prefix_data']);

function text(raw: Record<string, unknown>, field: string, max = 4096): string | null {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string' && typeof v !== 'number') throw new OutputConfigError(`field "${field}" must be a string`, field);
  const s = String(v);
  if (s.length > max) throw new OutputConfigError(`field "${field}" is longer than ${max} characters`, field);
  return s;
}

function bool(raw: Record<string, unknown>, field: string): boolean {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return false;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new OutputConfigError(`field "${field}" must be true or false`, field);
}

function integer(raw: Record<string, unknown>, field: string, min: number, max: number): number | null {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new OutputConfigError(`field "${field}" must be an integer from ${min} to ${max}`, field);
  return n;
}

/** Event type lists: an array, or one string with one type per line (or comma-separated). */
function typeList(raw: Record<string, unknown>, field: string): string[] {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return [];
  const items = Array.isArray(v) ? v : typeof v === 'string' ? v.split(/[\n,]/) : null;
  if (!items) throw new OutputConfigError(`field "${field}" must be a list of event types`, field);
  const types = items.map((x) => String(x).trim()).filter((x) => x !== '');
  for (const t of types) if (!EVENT_TYPE_RE.test(t)) throw new OutputConfigError(`field "${field}": "${t.slice(0, 70)}" is not an event type`, field);
  if (types.length > 1000) throw new OutputConfigError(`field "${field}" lists more than 1000 event types`, field);
  return [...new Set(types)];
}

/** Validates an output definition against the common fields and its module's fields. */
export function parseOutputInput(raw: Record<string, unknown>, modules: ReadonlyMap<string, OutputModuleDescriptor>): OutputInput {
  const name = text(raw, 'name', 64);
  if (name === null) throw new OutputConfigError('field "name" is required', 'name');
  if (!NAME_RE.test(name)) throw new OutputConfigError('field "name" must be 1-64 letters, digits, "_", "." or "-"', 'name');
  const moduleName = text(raw, 'module', 64);
  if (moduleName === null) throw new OutputConfigError('field "module" is required', 'module');
  const descriptor = modules.get(moduleName);
  if (!descriptor) throw new OutputConfigError(`field "module": unknown module "${moduleName}" (known: ${[...modules.keys()].sort().join(', ')})`, 'module');
  const stream = text(raw, 'type', 32) ?? text(raw, 'stream', 32);
  if (stream === null) throw new OutputConfigError(`field "type" (or "stream") is required: one of ${OUTPUT_STREAMS.join(', ')}`, 'type');
  if (!(OUTPUT_STREAMS as readonly string[]).includes(stream)) throw new OutputConfigError(`field "type": unknown stream "${stream}" (one of ${OUTPUT_STREAMS.join(', ')})`, 'type');

  for (const key of Object.keys(raw)) {
    if (!COMMON_FIELDS.has(key) && !(key in descriptor.fields)) {
      throw new OutputConfigError(`unknown field "${key}" for module ${moduleName} (module fields: ${Object.keys(descriptor.fields).join(', ') || 'none'})`, key);
    }
  }
  const fields: Record<string, string | number | boolean> = {};
  for (const [key, spec] of Object.entries(descriptor.fields)) {
    let value: string | number | boolean | null;
    if (spec.type === 'boolean') value = raw[key] === undefined ? null : bool(raw, key);
    else if (spec.type === 'integer') value = integer(raw, key, spec.min ?? 0, spec.max ?? Number.MAX_SAFE_INTEGER);
    else {
      value = text(raw, key, 65_536);
      if (value !== null && spec.oneOf && !spec.oneOf.includes(value)) throw new OutputConfigError(`field "${key}" must be one of ${spec.oneOf.join(', ')}`, key);
    }
    if (value === null) {
      if (spec.required) throw new OutputConfigError(`field "${key}" is required for module ${moduleName}: ${spec.description}`, key);
      continue;
    }
    fields[key] = value;
  }
  const sid = text(raw, 'sid', 64);
  if (sid !== null && !/^[0-9a-f-]{36}$/i.test(sid)) throw new OutputConfigError('field "sid" must be a sensor id (UUID)', 'sid');
  return {
    name,
    module: moduleName,
    stream: stream as OutputStream,
    filters: {
      event_white_list: typeList(raw, 'event_white_list'),
      event_black_list: typeList(raw, 'event_black_list'),
      sid: sid?.toLowerCase() ?? null,
      tag: text(raw, 'tag', 128),
      inv_id: text(raw, 'inv_id', 256),
      sample_rate: integer(raw, 'sample_rate', 1, 1_000_000) ?? 1,
    },
    shape: { is_flat: bool(raw, 'is_flat'), is_no_routing: bool(raw, 'is_no_routing'), is_prefix_data: bool(raw, 'is_prefix_data') },
    fields,
  };
}

/** The configuration as the API shows it: secrets replaced, in the platform's flat field layout. */
export function outputView(config: OutputConfig, descriptor: OutputModuleDescriptor | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config.fields)) fields[key] = descriptor?.fields[key]?.secret ? '********' : value;
  const f = config.filters;
  return {
    name: config.name,
    module: config.module,
    for: config.stream,
    type: config.stream,
    ...fields,
    event_white_list: f.event_white_list.join('\n'),
    event_black_list: f.event_black_list.join('\n'),
    sid: f.sid ?? '',
    tag: f.tag ?? '',
    inv_id: f.inv_id ?? '',
    sample_rate: f.sample_rate,
    is_flat: config.shape.is_flat,
    is_no_routing: config.shape.is_no_routing,
    is_prefix_data: config.shape.is_prefix_data,
    created: config.created,
    updated: config.updated,
  };
}
