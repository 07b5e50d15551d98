// The `webhook` output: one HTTP POST per record, body = the record's JSON, in log order, each signed
// with Lc-Signature when secret_key is set. A batch that fails half way reports how many records were
// taken (PartialDeliveryError), so only the rest is retried; a request whose answer is lost may still
// be repeated (at-least-once).
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import { PartialDeliveryError, type OutputModule, type OutputRecord } from '../output-module.js';
import { postWebhook, webhookFields, webhookTarget } from './webhook-request.js';

export const webhookModule: OutputModuleDescriptor = {
  name: 'webhook',
  description: 'POSTs every record as its own JSON request to an HTTP(S) URL, in order.',
  fields: webhookFields,
  create(ctx): OutputModule {
    const target = webhookTarget(ctx.fields);
    const closing = new AbortController();
    return {
      batching: { maxRecords: 100, maxWaitMs: 0 },
      async send(records: ReadonlyArray<OutputRecord>): Promise<void> {
        for (let i = 0; i < records.length; i++) {
          try {
            if (closing.signal.aborted) throw new Error(`webhook ${target.shownUrl}: the output is closed`);
            await postWebhook(target, Buffer.from(records[i]!.json, 'utf8'), { signal: closing.signal });
          } catch (err) {
            throw new PartialDeliveryError((err as Error).message, i);
          }
        }
      },
      async close(): Promise<void> {
        closing.abort();
      },
    };
  },
};
