// Cloud adapter configurations from the API body: the common fields (name, type, platform, hostname,
// mapping, grace_period) and each type's settings, checked with errors naming the field; and the view the
// API shows back, with secrets masked.
import { CLOUD_ADAPTER_TYPES, type CloudAdapterConfig, type CloudAdapterMapping, type CloudAdapterType } from '../../domain/cloud-adapters.js';
import { CloudAdapterDefinitionError, type CloudAdapterDefinition } from '../../services/cloud-adapter-control.js';
import { compileParsingRe } from '../usp/usp-mapping.js';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAPPING_KEYS = ['parsing_re', 'event_type_path', 'event_time_path', 'sensor_hostname_path', 'investigation_id_path'] as const;
const MASK = '********';

/** Settings never shown back by the API. */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set(['secret', 'auth_value']);

export interface WebhookSettings {
  secret: string;
}

export interface HttpPollerSettings {
  url: string;
  /** Header carrying the credential, e.g. `Authorization` or `X-Api-Key`. */
  auth_header: string;
  auth_value: string | null;
  /** `/`-separated path of the records array in the response; empty: the response is the array. */
  records_path: string;
  /** Seconds between polls once caught up. */
  interval: number;
  /** Seconds before a request is abandoned. */
  timeout: number;
  /** Field of the last record that becomes the cursor. */
  cursor_field: string | null;
  /** Path of a `next` token in the response that becomes the cursor (takes precedence over cursor_field). */
  next_path: string | null;
  /** Query parameter the cursor is sent in. */
  cursor_param: string;
}

export interface SyslogSettings {
  protocol: 'udp' | 'tcp';
  host: string;
  port: number;
}

const fail = (field: string, message: string): never => {
  throw new CloudAdapterDefinitionError(`field "${field}" ${message}`, field);
};

function text(raw: Record<string, unknown>, field: string, max: number): string | undefined {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') return fail(field, 'must be a string');
  if (v.length > max) return fail(field, `must be at most ${max} characters`);
  return v;
}

function number(raw: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const v = raw[field];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) return fail(field, `must be a number from ${min} to ${max}`);
  return n;
}

function parseMapping(raw: unknown): CloudAdapterMapping {
  if (raw === undefined || raw === null || raw === '') return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) return fail('mapping', 'must be an object');
  const m = raw as Record<string, unknown>;
  const mapping: CloudAdapterMapping = {};
  for (const key of MAPPING_KEYS) {
    const value = text(m, key, key === 'parsing_re' ? 4096 : 256);
    if (value !== undefined) mapping[key] = value;
  }
  if (mapping.parsing_re !== undefined) {
    try {
      compileParsingRe(mapping.parsing_re);
    } catch (err) {
      fail('mapping.parsing_re', `is not a regular expression: ${(err as Error).message}`);
    }
  }
  return mapping;
}

function webhookSettings(raw: Record<string, unknown>): WebhookSettings {
  const secret = text(raw, 'secret', 256) ?? fail('secret', 'is required: the shared secret senders present');
  if (secret.length < 16) fail('secret', 'must be at least 16 characters');
  return { secret };
}

function pollerSettings(raw: Record<string, unknown>): HttpPollerSettings {
  const url = text(raw, 'url', 4096) ?? fail('url', 'is required: the JSON API to poll');
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    fail('url', 'is not a URL');
  }
  if (parsed!.protocol !== 'http:' && parsed!.protocol !== 'https:') fail('url', 'must be an http or https URL');
  const authHeader = text(raw, 'auth_header', 128) ?? 'Authorization';
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(authHeader)) fail('auth_header', 'is not a header name');
  return {
    url,
    auth_header: authHeader,
    auth_value: text(raw, 'auth_value', 4096) ?? null,
    records_path: text(raw, 'records_path', 256) ?? '',
    interval: number(raw, 'interval', 0.05, 86_400) ?? 60,
    timeout: number(raw, 'timeout', 0.1, 600) ?? 30,
    cursor_field: text(raw, 'cursor_field', 256) ?? null,
    next_path: text(raw, 'next_path', 256) ?? null,
    cursor_param: text(raw, 'cursor_param', 128) ?? 'cursor',
  };
}

function syslogSettings(raw: Record<string, unknown>): SyslogSettings {
  const protocol = text(raw, 'protocol', 8) ?? 'udp';
  if (protocol !== 'udp' && protocol !== 'tcp') fail('protocol', 'must be one of: udp, tcp');
  const port = number(raw, 'port', 1, 65_535) ?? fail('port', 'is required: the UDP or TCP port to listen on');
  if (!Number.isInteger(port)) fail('port', 'must be a whole number');
  return { protocol: protocol as 'udp' | 'tcp', host: text(raw, 'host', 255) ?? '0.0.0.0', port };
}

export function parseCloudAdapter(raw: Record<string, unknown>): CloudAdapterDefinition {
  const name = text(raw, 'name', 64) ?? fail('name', 'is required');
  if (!NAME_RE.test(name)) fail('name', 'may hold only letters, digits, "_", "." and "-"');
  const type = text(raw, 'type', 32) ?? fail('type', `is required: one of ${CLOUD_ADAPTER_TYPES.join(', ')}`);
  if (!(CLOUD_ADAPTER_TYPES as readonly string[]).includes(type)) fail('type', `must be one of: ${CLOUD_ADAPTER_TYPES.join(', ')}`);
  const adapterType = type as CloudAdapterType;
  const platform = text(raw, 'platform', 8) ?? (adapterType === 'syslog' ? 'text' : 'json');
  if (platform !== 'json' && platform !== 'text') fail('platform', 'must be one of: json, text');
  const settings: Record<string, unknown> = { ...(adapterType === 'webhook' ? webhookSettings(raw) : adapterType === 'http_poller' ? pollerSettings(raw) : syslogSettings(raw)) };
  return {
    name,
    type: adapterType,
    platform: platform as 'json' | 'text',
    hostname: text(raw, 'hostname', 255) ?? name,
    mapping: parseMapping(raw.mapping),
    settings,
    grace_period: number(raw, 'grace_period', 0.01, 30 * 86_400) ?? null,
  };
}

/** The configuration as the API shows it: settings flat beside the common fields, secrets masked. */
export function cloudAdapterView(config: CloudAdapterConfig): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config.settings)) settings[key] = SECRET_SETTINGS.has(key) && value !== null ? MASK : value;
  return {
    name: config.name,
    type: config.type,
    platform: config.platform,
    hostname: config.hostname,
    mapping: config.mapping,
    grace_period: config.grace_period,
    ...settings,
    ...(config.type === 'webhook' ? { ingest_path: `/v1/ingest/webhook/${config.oid}/${config.name}` } : {}),
    enabled: config.enabled,
    disabled_at: config.disabled_at === null ? null : new Date(config.disabled_at).toISOString(),
    disabled_error: config.disabled_error,
    created: config.created,
    updated: config.updated,
  };
}
