// The HTTP side of the webhook and webhook_bulk outputs: their shared configuration fields and one signed
// POST, whose failures (any non-2xx answer, network error or timeout) become an Error that says what the
// destination answered. Uses Node's global fetch (undici) and node:crypto.
import { createHmac } from 'node:crypto';
import { PICKET_VERSION } from '../../../version.js';
import type { ModuleFieldSpec } from '../module-descriptor.js';
import { OutputConfigError, type OutputModuleContext } from '../output-module.js';

/** Header carrying the hex HMAC-SHA256 of the exact body bytes sent, keyed with secret_key. */
export const SIGNATURE_HEADER = 'Lc-Signature';

const DEFAULT_TIMEOUT_S = 30;
/** How much of an error answer goes into the error message. */
const ERROR_BODY_CHARS = 200;
/** Answers up to this size are read to the end so the connection can be reused; longer ones are cut. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
/** Headers the request sets itself; an auth header may not replace them. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'host', 'transfer-encoding', SIGNATURE_HEADER.toLowerCase()]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const webhookFields = {
  dest_host: { type: 'string', required: true, description: 'URL (http:// or https://) the records are POSTed to.' },
  secret_key: {
    type: 'string',
    secret: true,
    description: `When set, every request carries header ${SIGNATURE_HEADER}: the hex HMAC-SHA256 of the request body bytes, keyed with this value.`,
  },
  auth_header_name: { type: 'string', description: 'Name of an extra header sent with every request, e.g. Authorization.' },
  auth_header_value: { type: 'string', secret: true, description: 'Value of the auth_header_name header.' },
  timeout_s: { type: 'integer', min: 1, max: 600, description: `Seconds a request may take, answer included (default ${DEFAULT_TIMEOUT_S}).` },
} as const satisfies Record<string, ModuleFieldSpec>;

/** Where and how to POST, checked once when the output is created. */
export interface WebhookTarget {
  url: URL;
  /** The URL as messages show it: without the query string, which often carries a token. */
  shownUrl: string;
  secretKey: string | undefined;
  authHeader: { name: string; value: string } | undefined;
  timeoutMs: number;
}

type Fields = OutputModuleContext['fields'];

/** A string field, or undefined when absent or empty. */
export function optionalString(fields: Fields, name: string): string | undefined {
  const value = fields[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new OutputConfigError(`${name} must be a string`, name);
  return value;
}

export function requiredString(fields: Fields, name: string): string {
  const value = optionalString(fields, name);
  if (value === undefined) throw new OutputConfigError(`${name} is required`, name);
  return value;
}

export function optionalInteger(fields: Fields, name: string, spec: { default: number; min: number; max: number }): number {
  const value = fields[name];
  if (value === undefined) return spec.default;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
    throw new OutputConfigError(`${name} must be an integer from ${spec.min} to ${spec.max}`, name);
  }
  return value;
}

export function optionalBoolean(fields: Fields, name: string): boolean {
  const value = fields[name];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new OutputConfigError(`${name} must be a boolean`, name);
  return value;
}

/** Reads and checks the shared webhook fields; throws OutputConfigError naming the field at fault. */
export function webhookTarget(fields: Fields): WebhookTarget {
  const dest = requiredString(fields, 'dest_host');
  let url: URL;
  try {
    url = new URL(dest);
  } catch {
    throw new OutputConfigError(`dest_host must be an http:// or https:// URL, got "${dest}"`, 'dest_host');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OutputConfigError(`dest_host must be an http:// or https:// URL, got a ${url.protocol} URL`, 'dest_host');
  }
  // fetch refuses URLs with credentials, and they would end up in error messages.
  if (url.username || url.password) {
    throw new OutputConfigError('dest_host must not contain credentials: use auth_header_name and auth_header_value', 'dest_host');
  }

  const headerName = optionalString(fields, 'auth_header_name');
  const headerValue = optionalString(fields, 'auth_header_value');
  let authHeader: WebhookTarget['authHeader'];
  if (headerName !== undefined || headerValue !== undefined) {
    if (headerName === undefined) throw new OutputConfigError('auth_header_value is set but auth_header_name is not', 'auth_header_name');
    if (headerValue === undefined) throw new OutputConfigError('auth_header_name is set but auth_header_value is not', 'auth_header_value');
    if (!HEADER_NAME.test(headerName)) throw new OutputConfigError(`auth_header_name "${headerName}" is not a valid HTTP header name`, 'auth_header_name');
    if (RESERVED_HEADERS.has(headerName.toLowerCase())) {
      throw new OutputConfigError(`auth_header_name cannot be ${headerName}: the output sets that header itself`, 'auth_header_name');
    }
    if (/[\r\n\0]/.test(headerValue)) throw new OutputConfigError('auth_header_value must not contain line breaks', 'auth_header_value');
    authHeader = { name: headerName, value: headerValue };
  }

  const timeoutS = optionalInteger(fields, 'timeout_s', { default: DEFAULT_TIMEOUT_S, min: 1, max: 600 });
  return {
    url,
    shownUrl: `${url.origin}${url.pathname}`,
    secretKey: optionalString(fields, 'secret_key'),
    authHeader,
    timeoutMs: timeoutS * 1000,
  };
}

/** Hex HMAC-SHA256 of the bytes, as sent in Lc-Signature. */
export function signBody(secretKey: string, body: Uint8Array): string {
  return createHmac('sha256', secretKey).update(body).digest('hex');
}

/**
 * POSTs `body` (JSON, possibly gzipped: say so with contentEncoding) and resolves on a 2xx answer.
 * `signal` aborts the request, e.g. when the output closes.
 */
export async function postWebhook(target: WebhookTarget, body: Uint8Array, options: { contentEncoding?: 'gzip'; signal?: AbortSignal } = {}): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': `picket/${PICKET_VERSION}` };
  if (options.contentEncoding) headers['content-encoding'] = options.contentEncoding;
  if (target.secretKey !== undefined) headers[SIGNATURE_HEADER] = signBody(target.secretKey, body);
  if (target.authHeader) headers[target.authHeader.name] = target.authHeader.value;

  const timeout = AbortSignal.timeout(target.timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const prefix = `webhook ${target.shownUrl}`;
  try {
    // Redirects are not followed: the signature and auth header are meant for this destination only.
    const res = await fetch(target.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
    const text = await readStart(res, res.ok ? DRAIN_LIMIT_BYTES : ERROR_BODY_CHARS * 4);
    if (res.ok) return;
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
    const answer = text.replace(/\s+/g, ' ').trim().slice(0, ERROR_BODY_CHARS);
    throw new Error(`${prefix}: ${status}${location ? ` (redirect to ${location} not followed)` : ''}${answer ? `: ${answer}` : ''}`);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(prefix)) throw err;
    if (timeout.aborted) throw new Error(`${prefix}: no answer within ${target.timeoutMs / 1000} s (timeout)`);
    if (options.signal?.aborted) throw new Error(`${prefix}: request aborted, the output is closing`);
    throw new Error(`${prefix}: ${networkErrorText(err)}`);
  }
}

/** The start of an answer's body, decoded as UTF-8; stops reading after `limit` bytes. */
async function readStart(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= limit) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** fetch reports "fetch failed" and keeps the reason (ECONNREFUSED, a DNS failure, ...) in `cause`. */
function networkErrorText(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
  if (cause instanceof AggregateError && cause.errors.length > 0) cause = cause.errors[0];
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (cause.message) return cause.message;
    if (code) return code;
  }
  return String(cause);
}
