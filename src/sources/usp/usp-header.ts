// The USP v2 connection header (docs/usp.md §2): the first frame of an adapter connection, as JSON.
// Known fields are validated; the many other fields USP clients send (mappings, indexing, …) are ignored.
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Type, type Static } from 'typebox';
import { PLATFORM, type PlatformName } from '../../domain/platform.js';

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

export const UspMapping = Type.Object(
  {
    parsing_re: Type.Optional(Type.String({ maxLength: 4096 })),
    event_type_path: Type.Optional(Type.String({ maxLength: 256 })),
    event_time_path: Type.Optional(Type.String({ maxLength: 256 })),
    sensor_hostname_path: Type.Optional(Type.String({ maxLength: 256 })),
    investigation_id_path: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: true },
);
export type UspMapping = Static<typeof UspMapping>;

export const UspConnectionHeader = Type.Object(
  {
    version: Type.Literal(2),
    oid: Type.String({ format: 'uuid' }),
    iid: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    installation_key: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    host_name: Type.String({ minLength: 1, maxLength: 255 }),
    platform: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Integer({ minimum: 0, maximum: 0xffffffff })]),
    architecture: Type.Optional(Type.Unknown()),
    sensor_seed_key: Type.String({ minLength: 1, maxLength: 256 }),
    instance_id: Type.String({ format: 'uuid' }),
    is_compressed: Type.Optional(Type.Boolean()),
    data_format: Type.Optional(Type.Literal('msgpack')),
    mapping: Type.Optional(UspMapping),
  },
  { additionalProperties: true },
);
export type UspConnectionHeader = Static<typeof UspConnectionHeader>;

const ajv = new Ajv({ allErrors: false, strict: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const validateHeader = ajv.compile<UspConnectionHeader>(UspConnectionHeader);

export interface ParsedHeader {
  header: UspConnectionHeader;
  installationKey: string;
  plat: number;
}

function describe(err: ErrorObject): string {
  const path = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (err.keyword === 'required') return `${path ? `${path}.` : ''}${(err.params as { missingProperty: string }).missingProperty}: required`;
  return `${path || 'header'}: ${err.message ?? 'invalid'}`;
}

/** Parses the header frame; the error names the offending field. */
export function parseConnectionHeader(text: string): ParsedHeader | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `connection header is not JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'connection header must be a JSON object' };
  if (!validateHeader(value)) return { error: `connection header ${describe(validateHeader.errors![0]!)}` };
  const header = value;
  const installationKey = header.iid ?? header.installation_key;
  if (installationKey === undefined) return { error: 'connection header iid: required (the installation key)' };
  let plat: number;
  if (typeof header.platform === 'number') plat = header.platform;
  else if (header.platform in PLATFORM) plat = PLATFORM[header.platform as PlatformName];
  else return { error: `connection header platform: unknown platform "${header.platform.slice(0, 64)}"` };
  return { header, installationKey, plat };
}
