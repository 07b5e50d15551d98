// The lc-* headers of POST /ingest (platform-reference.md §6.1), checked and decoded: what the upload is,
// where it came from, how long to keep it, and which part of it this request carries.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { badRequest } from '../../api/errors.js';

export const MAX_PART = 100_000;
export const MAX_RETENTION_DAYS = 3650;
const TEXT = /^[\x20-\x7e]{1,256}$/;
const HINT = /^[A-Za-z0-9_.:-]{1,64}$/;

/** `done` ends a multi-part upload; a number is one of its parts; null: the body is the whole file. */
export type PartHeader = { kind: 'single' } | { kind: 'part'; number: number } | { kind: 'done' };

export interface IngestHeaders {
  /** lc-payload-id, or a fresh id when absent (every such upload is a new artifact). */
  payloadId: string;
  source: string;
  logType: string;
  originalPath: string;
  retentionDays: number;
  part: PartHeader;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

export function parseIngestHeaders(headers: IncomingHttpHeaders, defaultRetentionDays: number): IngestHeaders {
  const payloadId = header(headers, 'lc-payload-id');
  if (payloadId !== undefined && !TEXT.test(payloadId)) throw badRequest('header "lc-payload-id" must be 1..256 printable ASCII characters', 'lc-payload-id');
  const source = header(headers, 'lc-source') ?? 'api';
  if (!TEXT.test(source)) throw badRequest('header "lc-source" must be 1..256 printable ASCII characters', 'lc-source');
  const logType = header(headers, 'lc-hint') ?? 'file';
  if (!HINT.test(logType)) throw badRequest('header "lc-hint" must be 1..64 characters of A-Z a-z 0-9 _ . : -', 'lc-hint');
  const rawPath = header(headers, 'lc-path');
  let originalPath = '';
  if (rawPath !== undefined) {
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(rawPath) || rawPath.length > 8192) throw badRequest('header "lc-path" must be the base64 of the original path', 'lc-path');
    originalPath = Buffer.from(rawPath, 'base64').toString('utf8');
  }
  const rawDays = header(headers, 'lc-retention-days');
  const retentionDays = rawDays === undefined ? defaultRetentionDays : Number(rawDays);
  if (!Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > MAX_RETENTION_DAYS) {
    throw badRequest(`header "lc-retention-days" must be a whole number of days, 1..${MAX_RETENTION_DAYS}`, 'lc-retention-days');
  }
  const rawPart = header(headers, 'lc-part');
  let part: PartHeader = { kind: 'single' };
  if (rawPart === 'done') part = { kind: 'done' };
  else if (rawPart !== undefined) {
    const n = /^\d{1,6}$/.test(rawPart) ? Number(rawPart) : NaN;
    if (!(n >= 0 && n <= MAX_PART)) throw badRequest(`header "lc-part" must be a part number 0..${MAX_PART} or "done"`, 'lc-part');
    part = { kind: 'part', number: n };
  }
  if (part.kind !== 'single' && payloadId === undefined) throw badRequest('a multi-part upload (lc-part) needs header "lc-payload-id"', 'lc-payload-id');
  return { payloadId: payloadId ?? randomUUID(), source, logType, originalPath, retentionDays, part };
}
