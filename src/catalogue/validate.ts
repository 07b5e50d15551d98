// Validation of envelopes and payloads against the catalogue, with errors that name the offending field
// by its dotted path in the envelope (`event.crash_context.FILE_ID`, `routing.event_time`) in plain words.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from 'typebox';
import type { RoutingScope } from './definition.js';
import { MAX_EPOCH_SECONDS, patternInfo, UNIT_KEYWORD } from './primitives.js';
import { lookupEvent } from './registry.js';
import { PRODUCED_ROUTING, Routing } from './routing.js';
import { scheduleFrequencyOf } from './schedule-events.js';

export interface FieldError {
  /** Dotted path of the offending field in the envelope, e.g. `event.public_ip` or `routing.event_time`. */
  field: string;
  message: string;
}

export interface ValidationResult {
  valid: boolean;
  /** False when the event type is not in the catalogue (only the envelope and "payload is an object" were checked). */
  known?: boolean;
  errors: FieldError[];
}

export interface ValidateEventOptions {
  /** Validate the payload as this type, whatever routing.event_type says. */
  eventType?: string;
  /** The event was produced by Picket: routing must be complete for its scope, event_time in ms, event_id a UUID. */
  produced?: boolean;
}

// ajv-formats is CommonJS; its default export arrives wrapped under NodeNext.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv, formats: string[]) => Ajv;

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
addFormats(ajv, ['uuid', 'ipv4', 'ipv6']);
ajv.addKeyword({ keyword: UNIT_KEYWORD, schemaType: 'string' });

const compiled = new WeakMap<TSchema, ValidateFunction>();

function validatorFor(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

function routingSchema(scope: RoutingScope, produced: boolean): TSchema {
  return produced ? PRODUCED_ROUTING[scope] : Routing;
}

const FORMAT_RULES: Record<string, string> = {
  uuid: 'must be a UUID',
  ipv4: 'must be an IPv4 address',
  ipv6: 'must be an IPv6 address',
};

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value in words, for "got ..." in messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
    case 'number':
      return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
    case 'boolean':
      return `the boolean ${value}`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

function typeText(type: unknown): string {
  const types = Array.isArray(type) ? type : String(type).split(',');
  return types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(' or ');
}

function limitMessage(err: ErrorObject): string {
  const limit = (err.params as { limit: number }).limit;
  const value = err.data as number;
  const unit = (err.parentSchema as Record<string, unknown> | undefined)?.[UNIT_KEYWORD];
  if (unit === 'epoch-s' && err.keyword === 'maximum') return `must be Unix seconds; ${value} looks like milliseconds`;
  if (unit === 'epoch-ms' && err.keyword === 'minimum' && value >= 0 && value <= MAX_EPOCH_SECONDS) return `must be Unix milliseconds; ${value} looks like seconds`;
  if (unit === 'epoch-ms' && err.keyword === 'maximum') return `must be Unix milliseconds; ${value} looks like micro- or nanoseconds`;
  return `must be ${err.keyword === 'minimum' ? 'at least' : 'at most'} ${limit}, got ${value}`;
}

function messageFor(err: ErrorObject, prefix: string): string {
  const got = describeValue(err.data);
  switch (err.keyword) {
    case 'required':
      return 'required field is missing';
    case 'additionalProperties':
      return prefix === 'routing' ? 'is not a routing field' : 'is not allowed here';
    case 'type':
      return `must be ${typeText((err.params as { type: unknown }).type)}, got ${got}`;
    case 'format': {
      const format = (err.params as { format: string }).format;
      return `${FORMAT_RULES[format] ?? `must be in format ${format}`}, got ${got}`;
    }
    case 'pattern': {
      const pattern = (err.params as { pattern: string }).pattern;
      return `${patternInfo(pattern)?.rule ?? `must match ${pattern}`}, got ${got}`;
    }
    case 'minimum':
    case 'maximum':
      return limitMessage(err);
    case 'enum': {
      const values = (err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v));
      const list = values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
      return `must be ${list}, got ${got}`;
    }
    case 'const':
      return `must be ${JSON.stringify((err.params as { allowedValue: unknown }).allowedValue)}, got ${got}`;
    default:
      return err.message ?? 'is invalid';
  }
}

function fieldOf(err: ErrorObject, prefix: string): string {
  const parts = err.instancePath === '' ? [] : err.instancePath.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (err.keyword === 'required') parts.push((err.params as { missingProperty: string }).missingProperty);
  if (err.keyword === 'additionalProperties') parts.push((err.params as { additionalProperty: string }).additionalProperty);
  return [prefix, ...parts].join('.');
}

/** Ajv's errors as one FieldError per field (the first found), paths prefixed with where the value sits. */
function check(schema: TSchema, value: unknown, prefix: string): FieldError[] {
  const validate = validatorFor(schema);
  if (validate(value)) return [];
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const err of validate.errors ?? []) {
    const field = fieldOf(err, prefix);
    if (seen.has(field)) continue;
    seen.add(field);
    out.push({ field, message: messageFor(err, prefix) });
  }
  return out;
}

function notAnObject(field: string, value: unknown): FieldError {
  return { field, message: value === undefined ? 'required field is missing' : `must be an object, got ${describeValue(value)}` };
}

function payloadErrors(eventType: string | undefined, payload: unknown): { known: boolean; errors: FieldError[] } {
  const entry = eventType === undefined ? undefined : lookupEvent(eventType);
  const key = entry?.payloadKey ?? 'event';
  if (!isObject(payload)) return { known: entry !== undefined, errors: [notAnObject(key, payload)] };
  if (!entry) return { known: false, errors: [] };
  return { known: true, errors: check(entry.payloadSchema, payload, key) };
}

/** Validates the payload part (`event`, or `record` for billing_record) of an event of the given type. */
export function validatePayload(eventType: string, payload: unknown): ValidationResult {
  const { known, errors } = payloadErrors(eventType, payload);
  return { valid: errors.length === 0, known, errors };
}

/**
 * Validates a whole envelope: `{routing, event}` (or `{record, routing?}` for billing_record). Types not
 * in the catalogue are valid with any object payload, and the result says `known: false`.
 */
export function validateEvent(value: unknown, opts: ValidateEventOptions = {}): ValidationResult {
  const produced = opts.produced === true;
  if (!isObject(value)) return { valid: false, known: false, errors: [{ field: 'envelope', message: `must be an object, got ${describeValue(value)}` }] };

  const routing = value.routing;
  let eventType = opts.eventType ?? (isObject(routing) && typeof routing.event_type === 'string' ? routing.event_type : undefined);
  if (eventType === undefined && 'record' in value && !('event' in value)) eventType = 'billing_record';
  const entry = eventType === undefined ? undefined : lookupEvent(eventType);
  const payloadKey = entry?.payloadKey ?? 'event';

  const errors: FieldError[] = [];
  // billing_record may come without routing (as in the seed sample); Picket always writes one.
  const routingOptional = payloadKey === 'record' && !produced;
  if (!(routingOptional && routing === undefined)) {
    if (isObject(routing)) errors.push(...check(routingSchema(entry?.routingScope ?? 'org', produced), routing, 'routing'));
    else errors.push(notAnObject('routing', routing));
  }

  const payload = value[payloadKey];
  errors.push(...payloadErrors(eventType, payload).errors);

  // A schedule tick Picket emits must carry the period its name says (the seed's 1h_per_org sample does not).
  if (produced && entry?.family && eventType !== undefined && isObject(payload) && typeof payload.frequency === 'number') {
    const expected = scheduleFrequencyOf(eventType);
    if (expected !== undefined && payload.frequency !== expected && !errors.some((e) => e.field === 'event.frequency')) {
      errors.push({ field: 'event.frequency', message: `must be ${expected} for ${eventType}, got ${payload.frequency}` });
    }
  }

  return { valid: errors.length === 0, known: entry !== undefined, errors };
}
