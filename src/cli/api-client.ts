// How the management commands reach a running cloud: where the URL and API key come from, and a small
// JSON client over http/https that turns API errors into "picket: <message> (HTTP <status>)".
//
// Each of the URL and the API key is taken from, in order: the flag (--url, --api-key), the environment
// (PICKET_URL, PICKET_API_KEY), then <data>/credentials.json, which `picket serve` writes on first start
// ({url, oid, api_key, installation_key}); <data> is --data, else PICKET_DATA (or PICKET_DATA_DIR, the
// server's variable), else ./data.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';

export interface ConnectionOptions {
  url?: string;
  apiKey?: string;
  data?: string;
  ca?: string;
}

export interface ApiTarget {
  url: string;
  apiKey: string;
  /** Organization of the key, when known without asking the API (credentials.json). */
  oid: string | undefined;
  ca: Buffer | undefined;
}

interface CredentialsFile {
  url?: unknown;
  oid?: unknown;
  api_key?: unknown;
}

/** Adds --url, --api-key, --data and --ca to a command that talks to the API. */
export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'cloud URL (env PICKET_URL; default: from <data>/credentials.json)')
    .option('--api-key <key>', 'API key "<key_id>.<secret>" (env PICKET_API_KEY; default: from <data>/credentials.json)')
    .option('--data <dir>', 'data directory of a local cloud, holding credentials.json (env PICKET_DATA; default ./data)')
    .option('--ca <file>', 'extra CA certificate (PEM) for a cloud with a self-signed certificate (env PICKET_CA)');
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** commander argument parser for a whole number in [min, max]. */
export function intArg(name: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

export function dataDir(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(str(opts.data) ?? str(env.PICKET_DATA) ?? str(env.PICKET_DATA_DIR) ?? './data');
}

function readCredentials(file: string): CredentialsFile | null {
  if (!existsSync(file)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${file} does not hold a JSON object`);
  return parsed as CredentialsFile;
}

/** Finds the cloud URL and API key (see the file comment for the order); a clear error when there are none. */
export function resolveTarget(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): ApiTarget {
  let url = str(opts.url) ?? str(env.PICKET_URL);
  let apiKey = str(opts.apiKey) ?? str(env.PICKET_API_KEY);
  let oid: string | undefined;
  const file = path.join(dataDir(opts, env), 'credentials.json');
  if (url === undefined || apiKey === undefined) {
    const creds = readCredentials(file);
    if (creds) {
      url ??= str(creds.url);
      if (apiKey === undefined || apiKey === str(creds.api_key)) {
        apiKey = str(creds.api_key);
        oid = str(creds.oid);
      }
    }
  }
  if (url === undefined || apiKey === undefined) {
    const missing = [url === undefined ? 'cloud URL' : null, apiKey === undefined ? 'API key' : null].filter(Boolean).join(' and ');
    throw new Error(
      `no ${missing} found: pass --url and --api-key, set PICKET_URL and PICKET_API_KEY, ` +
        `or point --data (PICKET_DATA) at the data directory of a local cloud (looked for ${file})`,
    );
  }
  const caFile = str(opts.ca) ?? str(env.PICKET_CA);
  let ca: Buffer | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new Error(`cannot read CA certificate ${caFile}: ${(err as Error).message}`);
    }
  }
  return { url: url.replace(/\/+$/, ''), apiKey, oid, ca };
}

/** An error answer of the API: its message reads "<error> (HTTP <status>)". */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly apiMessage: string,
  ) {
    super(`${apiMessage} (HTTP ${status})`);
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export class ApiClient {
  private oidPromise: Promise<string> | undefined;

  constructor(readonly target: ApiTarget) {
    if (target.oid) this.oidPromise = Promise.resolve(target.oid);
  }

  static fromOptions(opts: ConnectionOptions): ApiClient {
    return new ApiClient(resolveTarget(opts));
  }

  /** Organization of the API key (from credentials.json, else asked of the API). */
  oid(): Promise<string> {
    this.oidPromise ??= this.request<{ oid: string }>('GET', '/v1/whoami').then((w) => w.oid);
    return this.oidPromise;
  }

  get<T>(route: string, query?: Query): Promise<T> {
    return this.request<T>('GET', route, { query });
  }

  post<T>(route: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', route, { body });
  }

  delete<T>(route: string, options: { query?: Query; body?: unknown } = {}): Promise<T> {
    return this.request<T>('DELETE', route, options);
  }

  /** One JSON request; resolves with the parsed body of a 2xx answer, rejects with ApiRequestError otherwise. */
  async request<T>(method: string, route: string, options: { query?: Query; body?: unknown } = {}): Promise<T> {
    const url = new URL(`${this.target.url}${route}`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body), 'utf8');
    const headers: Record<string, string> = { authorization: `Bearer ${this.target.apiKey}`, accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const { status, text } = await send(url, method, headers, payload, this.target.ca);
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (status < 200 || status >= 300) {
      const err = body as { error?: unknown; code?: unknown } | undefined;
      const message = typeof err?.error === 'string' ? err.error : text.trim().slice(0, 200) || http.STATUS_CODES[status] || 'request failed';
      throw new ApiRequestError(status, typeof err?.code === 'string' ? err.code : undefined, message);
    }
    if (body === undefined && text !== '') throw new Error(`the API answered ${method} ${route} with something that is not JSON`);
    return body as T;
  }
}

function send(url: URL, method: string, headers: Record<string, string>, payload: Buffer | undefined, ca: Buffer | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
    if (!mod) {
      reject(new Error(`unsupported cloud URL ${url.origin}: use http:// or https://`));
      return;
    }
    const req = mod.request(url, { method, headers, ...(ca && url.protocol === 'https:' ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot reach the cloud at ${url.origin}: ${err.code ?? err.message}${err.code ? ` (${err.message})` : ''}`)));
    req.end(payload);
  });
}

// ---- Response shapes the commands read (see docs/api.md) ----

export interface ApiSensor {
  sid: string;
  oid: string;
  iid: string;
  did: string | null;
  plat: number;
  arch: number;
  hostname: string;
  ext_ip: string;
  int_ip: string;
  mac: string;
  sensor_version: string;
  kernel: boolean;
  enroll: string;
  enroll_ts: number;
  alive: string | null;
  alive_ts: number | null;
  tags: string[];
  isolated: boolean;
  should_isolate: boolean;
  deleted: string | null;
  deleted_ts: number | null;
  state: 'online' | 'offline' | 'deleted' | 'refused';
  state_reason: string | null;
  last_issue: { kind: string; reason: string; at: string; at_ts: number } | null;
  reenroll_order: { hostname: string | null; at: string; at_ts: number } | null;
  is_online?: boolean;
}

export interface ApiSensorPage {
  sensors: ApiSensor[];
  continuation_token?: string;
}

export interface ApiSensorDetail {
  info: ApiSensor;
  is_online: boolean;
  online: { connected_at?: string; connected_ts?: number; ext_ip?: string };
}

export interface ApiTag {
  tag: string;
  by: string;
  added: string;
  added_ts: number;
  expires: string | null;
  expires_ts: number | null;
}

export interface ApiTags {
  tags: Record<string, Record<string, ApiTag>>;
}

export interface ApiOrg {
  oid: string;
  name: string;
  quota: number | null;
  created: string;
  created_ts: number;
  sensors?: number;
  online?: number;
}

export interface ApiKeyInfo {
  key_id: string;
  oid: string;
  name: string;
  role: string;
  created: string;
  created_ts: number;
}

export interface ApiInstallationKey {
  iid: string;
  oid: string;
  desc: string;
  tags: string;
  created: string;
  created_ts: number;
}

export interface ApiTimeline {
  events: Array<{ routing: { event_type: string; event_time: number; [k: string]: unknown }; event?: unknown; [k: string]: unknown }>;
  next_cursor: string | null;
}
