// artifact_get: the reference sensor uploads a file through the cloud's POST /ingest (docs/artifacts.md),
// in parts of 15 MiB when larger, authenticated with the organization's ingestion key.
import { randomUUID } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';

/** Files larger than this go in numbered parts, the last one sent as `done`. */
export const PART_BYTES = 15 * 1024 * 1024;

export interface ArtifactUploadTarget {
  /** http(s)://host:port/ingest of the cloud. */
  ingestUrl: string;
  ingestionKey: string;
  /** Who the sensor is now (null before it enrolled). */
  identity(): { oid: string; sid: string } | null;
}

export interface UploadRequest {
  filePath: string;
  retentionDays?: number;
  payloadId?: string;
  hint?: string;
}

export interface UploadOutcome {
  logId: string;
  size: number;
  md5: string;
  parts: number;
}

export class UploadError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** The cloud's ingest URL for a sensor URL (ws(s)://host:port/sensor or http(s)://host:port). */
export function ingestUrlOf(cloudUrl: string): string {
  const u = new URL(cloudUrl);
  u.protocol = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
  u.pathname = '/ingest';
  u.search = '';
  return u.toString();
}

async function readRange(file: string, start: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  if (length === 0) return Buffer.alloc(0);
  for await (const c of createReadStream(file, { start, end: start + length - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Uploads one file; throws ENOENT-style errors from the file system and UploadError for a refusal. */
export async function uploadArtifact(target: ArtifactUploadTarget, req: UploadRequest): Promise<UploadOutcome> {
  const who = target.identity();
  if (!who) throw new UploadError('the sensor is not enrolled yet', 0);
  const stat = await fs.stat(req.filePath);
  if (!stat.isFile()) throw Object.assign(new Error(`${req.filePath} is not a file`), { code: 'ENOENT' });
  const payloadId = req.payloadId ?? randomUUID();
  const headers: Record<string, string> = {
    authorization: `Basic ${Buffer.from(`${who.oid}:${target.ingestionKey}`).toString('base64')}`,
    'content-type': 'application/octet-stream',
    'lc-source': who.sid,
    'lc-hint': req.hint ?? 'file',
    'lc-payload-id': payloadId,
    'lc-path': Buffer.from(path.resolve(req.filePath)).toString('base64'),
    ...(req.retentionDays !== undefined ? { 'lc-retention-days': String(req.retentionDays) } : {}),
  };
  const count = stat.size > PART_BYTES ? Math.ceil(stat.size / PART_BYTES) : 1;
  let answer: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const body = await readRange(req.filePath, i * PART_BYTES, Math.min(PART_BYTES, stat.size - i * PART_BYTES));
    const part: Record<string, string> = count === 1 ? {} : { 'lc-part': i === count - 1 ? 'done' : String(i) };
    const res = await fetch(target.ingestUrl, { method: 'POST', headers: { ...headers, ...part }, body });
    answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) throw new UploadError(`upload refused: HTTP ${res.status} ${String(answer.error ?? '')}`.trim(), res.status);
  }
  return { logId: String(answer.log_id), size: Number(answer.size), md5: String(answer.md5), parts: count };
}
