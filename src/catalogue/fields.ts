// Field documentation derived from the schemas themselves, so the tables in docs/events.md, the catalogue
// document and the mutation tests can never disagree with what is validated.
import type { TSchema } from 'typebox';
import type { FieldDoc } from './definition.js';
import { FORMAT_LABELS, patternInfo, UNIT_KEYWORD } from './primitives.js';

type JsonSchema = Record<string, unknown>;

const UNIT_LABELS: Record<string, string> = { 'epoch-s': 'Unix seconds', 'epoch-ms': 'Unix ms' };

function asSchema(value: unknown): JsonSchema {
  return (value ?? {}) as JsonSchema;
}

/** The type of a schema in words: `string (UUID)`, `integer (Unix seconds)`, `0 | 1`, `integer or null`. */
export function typeLabel(schema: TSchema | JsonSchema): string {
  const s = schema as JsonSchema;
  if ('const' in s) return JSON.stringify(s.const);
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  const types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : [];
  if (types.length === 0) return 'any';
  return types
    .map((t) => {
      if (t === 'string') {
        if (typeof s.format === 'string') return `string (${FORMAT_LABELS[s.format] ?? s.format})`;
        if (typeof s.pattern === 'string') return `string (${patternInfo(s.pattern)?.label ?? `matching ${s.pattern}`})`;
        return 'string';
      }
      if (t === 'integer' || t === 'number') {
        const unit = s[UNIT_KEYWORD];
        return typeof unit === 'string' ? `${t} (${UNIT_LABELS[unit] ?? unit})` : t;
      }
      if (t === 'array') return `${typeLabel(asSchema(s.items))}[]`;
      return t;
    })
    .join(' or ');
}

/** Every documented property of an object schema, depth first, with dotted paths. */
export function describeFields(schema: TSchema | JsonSchema, prefix = ''): FieldDoc[] {
  const s = schema as JsonSchema;
  const properties = s.properties as Record<string, JsonSchema> | undefined;
  if (!properties) return [];
  const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
  const out: FieldDoc[] = [];
  for (const [name, child] of Object.entries(properties)) {
    const path = prefix ? `${prefix}.${name}` : name;
    out.push({ path, type: typeLabel(child), description: typeof child.description === 'string' ? child.description : '', required: required.has(name) });
    out.push(...describeFields(child, path));
  }
  return out;
}
