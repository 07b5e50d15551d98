// Inbound webhook: senders POST records to /v1/ingest/webhook/{oid}/{name} with the adapter's shared
// secret (header `x-picket-secret`, or the password of HTTP basic auth). The body is one JSON object, a
// JSON array of objects, or NDJSON (one object per line); every record of a post is stored, or none.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { WebhookOutcome, WebhookPost } from '../../services/cloud-adapter-control.js';
import type { WebhookSettings } from './adapter-config.js';
import type { AdapterRecord } from './adapter-sensor.js';
import type { AdapterContext, AdapterSource } from './adapter-runner.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Whether a presented secret is the adapter's, in constant time. */
export function secretMatches(settings: WebhookSettings, given: string | undefined): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(settings.secret));
}

/** Records of a body: a JSON object or array of objects, else NDJSON. Throws naming what is wrong. */
export function parseWebhookBody(body: Buffer, contentType: string | undefined): AdapterRecord[] {
  const text = body.toString('utf8').trim();
  if (text === '') throw new Error('the body is empty');
  const ndjson = /ndjson|jsonl|json-seq/i.test(contentType ?? '');
  if (!ndjson) {
    try {
      return toRecords(JSON.parse(text) as unknown, 'body');
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // Not one JSON document: try it as NDJSON.
    }
  }
  const records: AdapterRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`line ${i + 1} is not JSON: ${(err as Error).message}`);
    }
    records.push(...toRecords(value, `line ${i + 1}`));
  }
  return records;
}

function toRecords(value: unknown, where: string): AdapterRecord[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new Error(`${where}${Array.isArray(value) ? ` item ${i}` : ''} is not a JSON object`);
    return { j: item as Record<string, unknown> };
  });
}

export class WebhookReceiver implements AdapterSource {
  constructor(
    private readonly settings: WebhookSettings,
    private readonly ctx: AdapterContext,
  ) {}

  async start(): Promise<void> {
    this.ctx.succeeded(0);
  }

  async stop(): Promise<void> {}

  authorized(secret: string | undefined): boolean {
    return secretMatches(this.settings, secret);
  }

  async receive(post: WebhookPost): Promise<WebhookOutcome> {
    if (!this.authorized(post.secret)) return { status: 'unauthorized' };
    let records: AdapterRecord[];
    try {
      records = parseWebhookBody(post.body, post.contentType);
    } catch (err) {
      return { status: 'invalid', error: (err as Error).message };
    }
    const mapped = this.ctx.sensor.toEvents(records);
    if ('error' in mapped) return { status: 'invalid', error: mapped.error };
    try {
      await this.ctx.pipeline.submit(mapped.events);
    } catch (err) {
      this.ctx.failed(`could not store a webhook post: ${(err as Error).message}`);
      throw err;
    }
    this.ctx.succeeded(mapped.events.length);
    return { status: 'accepted', events: mapped.events.length };
  }
}
