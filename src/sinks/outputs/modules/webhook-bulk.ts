// The `webhook_bulk` output: one HTTP POST per batch whose body is a JSON array of the records, optionally
// gzipped; the Lc-Signature covers the bytes actually sent. The array is concatenated from each record's
// JSON text, never re-serialised.
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import type { OutputModule, OutputRecord } from '../output-module.js';
import { optionalBoolean, optionalInteger, postWebhook, webhookFields, webhookTarget } from './webhook-request.js';

const gzipAsync = promisify(gzip);

const MAX_RECORDS = { default: 1000, min: 1, max: 100_000 };
const SEC_PER_FILE = { default: 10, min: 1, max: 3600 };

/** The request body: `[json,json,...]`. */
export function bulkBody(records: ReadonlyArray<OutputRecord>): string {
  let body = '[';
  for (let i = 0; i < records.length; i++) body += (i === 0 ? '' : ',') + records[i]!.json;
  return body + ']';
}

export const webhookBulkModule: OutputModuleDescriptor = {
  name: 'webhook_bulk',
  description: 'POSTs batches of records as one JSON array per request to an HTTP(S) URL, optionally gzipped.',
  fields: {
    ...webhookFields,
    sec_per_file: {
      type: 'integer',
      min: SEC_PER_FILE.min,
      max: SEC_PER_FILE.max,
      description: `Longest time (seconds) a record waits for its batch to fill before the batch is sent anyway (default ${SEC_PER_FILE.default}).`,
    },
    max_records: {
      type: 'integer',
      min: MAX_RECORDS.min,
      max: MAX_RECORDS.max,
      description: `Most records in one request (default ${MAX_RECORDS.default}).`,
    },
    is_compression: { type: 'boolean', description: 'Gzip the request body (Content-Encoding: gzip); the signature is over the gzipped bytes.' },
  },
  create(ctx): OutputModule {
    const target = webhookTarget(ctx.fields);
    const maxRecords = optionalInteger(ctx.fields, 'max_records', MAX_RECORDS);
    const secPerFile = optionalInteger(ctx.fields, 'sec_per_file', SEC_PER_FILE);
    const compress = optionalBoolean(ctx.fields, 'is_compression');
    const closing = new AbortController();
    return {
      batching: { maxRecords, maxWaitMs: secPerFile * 1000 },
      async send(records: ReadonlyArray<OutputRecord>): Promise<void> {
        if (records.length === 0) return;
        if (closing.signal.aborted) throw new Error(`webhook ${target.shownUrl}: the output is closed`);
        const json = Buffer.from(bulkBody(records), 'utf8');
        if (compress) await postWebhook(target, await gzipAsync(json), { contentEncoding: 'gzip', signal: closing.signal });
        else await postWebhook(target, json, { signal: closing.signal });
      },
      async close(): Promise<void> {
        closing.abort();
      },
    };
  },
};
