// Field types shared by the event schemas. Each carries what a reader (and an error message) needs:
// time fields say their unit (`x-unit`), patterned strings have a name and a human rule.
import { Type, type TSchema } from 'typebox';

/** Largest plausible Unix time in seconds (year 2286); anything above is milliseconds sent by mistake. */
export const MAX_EPOCH_SECONDS = 9_999_999_999;
/** Smallest plausible Unix time in ms (2001-09-09); anything lower is seconds sent by mistake. */
export const MIN_EPOCH_MS = 1_000_000_000_000;
/** Largest plausible Unix time in ms (year 2286); anything above is micro- or nanoseconds. */
export const MAX_EPOCH_MS = 9_999_999_999_999;

/** Annotation keyword naming the unit of a time field (`epoch-s` or `epoch-ms`). */
export const UNIT_KEYWORD = 'x-unit';
export type TimeUnit = 'epoch-s' | 'epoch-ms';

/** Patterned strings: the rule in words, used in field tables and error messages. */
export interface PatternInfo {
  pattern: string;
  label: string;
  rule: string;
}

export const PATTERNS = {
  hex32: { pattern: '^[0-9a-f]{32}$', label: '32 lowercase hex digits', rule: 'must be 32 lowercase hex digits (a UUID without dashes)' },
  mac: {
    pattern: '^$|^[0-9A-Fa-f]{2}([-:][0-9A-Fa-f]{2}){5}$',
    label: 'MAC address',
    rule: 'must be a MAC address such as 42-01-0A-80-00-02 (or "" when the host has none)',
  },
  goDuration: {
    pattern: '^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$',
    label: 'Go duration',
    rule: 'must be a duration such as 720h0m0s',
  },
  sqlDateTime: {
    pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$',
    label: 'YYYY-MM-DD HH:MM:SS, UTC',
    rule: 'must be a UTC time written YYYY-MM-DD HH:MM:SS',
  },
  eventType: {
    pattern: '^[A-Za-z0-9_.:-]{1,64}$',
    label: 'event type name',
    rule: 'must be 1 to 64 characters of A-Z a-z 0-9 _ . : -',
  },
  uuidOrEmpty: {
    pattern: '^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
    label: 'UUID or ""',
    rule: 'must be a UUID or ""',
  },
} as const satisfies Record<string, PatternInfo>;

const PATTERN_BY_REGEX = new Map<string, PatternInfo>(Object.values(PATTERNS).map((p) => [p.pattern, p]));

export function patternInfo(pattern: string): PatternInfo | undefined {
  return PATTERN_BY_REGEX.get(pattern);
}

/** Formats used by the schemas (ajv-formats), in words. */
export const FORMAT_LABELS: Record<string, string> = {
  uuid: 'UUID',
  ipv4: 'IPv4 address',
  ipv6: 'IPv6 address',
};

export const Uuid = (description: string) => Type.String({ format: 'uuid', description });

/** A UUID, or null where the platform leaves it unset. */
export const NullableUuid = (description: string) => Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'uuid', description });

export const Hex32 = (description: string) => Type.String({ pattern: PATTERNS.hex32.pattern, description });

export const EpochSeconds = (description: string) =>
  Type.Integer({ minimum: 0, maximum: MAX_EPOCH_SECONDS, [UNIT_KEYWORD]: 'epoch-s', description });

export const EpochMillis = (description: string) =>
  Type.Integer({ minimum: MIN_EPOCH_MS, maximum: MAX_EPOCH_MS, [UNIT_KEYWORD]: 'epoch-ms', description });

/** The seed's "Boolean integer": 0 or 1. */
export const BooleanInteger = (description: string) => Type.Unsafe<0 | 1>({ type: 'integer', enum: [0, 1], description });

export const Count = (description: string) => Type.Integer({ minimum: 0, description });

/** `ERROR` of a command result: the platform's error codes (0 and 200 are success). */
export const ErrorCode = (description = 'Result code of the command: 0 (or 200) on success, otherwise an error code such as 5 (access denied), 50 (not supported) or 87 (invalid parameter).') =>
  Type.Integer({ minimum: 0, description });

export const Text = (description: string, options: Record<string, unknown> = {}) => Type.String({ ...options, description });

/** A nested object that must be present; permissive about fields beyond the documented ones. */
export const Nested = <P extends Record<string, TSchema>>(properties: P, description: string) =>
  Type.Object(properties, { additionalProperties: true, description });

/** An event payload: documented fields required as listed, extra fields allowed (sensors add fields). */
export const Payload = <P extends Record<string, TSchema>>(properties: P, description: string) =>
  Type.Object(properties, { additionalProperties: true, description });
