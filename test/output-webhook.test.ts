// The webhook and webhook_bulk outputs against a real node:http receiver: what arrives (one POST per
// record or per batch, exact JSON, order, gzip), that Lc-Signature proves the sender knew the secret, and
// that every failure (error status, receiver down, slow receiver) rejects with an Error saying what happened.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { webhookBulkModule } from '../src/sinks/outputs/modules/webhook-bulk.js';
import { webhookModule } from '../src/sinks/outputs/modules/webhook.js';
import type { OutputModuleDescriptor } from '../src/sinks/outputs/module-descriptor.js';
import { OutputConfigError, type OutputModule, type OutputRecord } from '../src/sinks/outputs/output-module.js';

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The raw bytes of the request body, as sent. */
  body: Buffer;
}

interface Answer {
  status: number;
  body?: string;
  /** Answer only after this long. */
  delayMs?: number;
}

interface Receiver {
  url: string;
  requests: Received[];
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A real HTTP server recording every request; `answer` decides the reply to the n-th request (0-based). */
async function startReceiver(answer: (n: number) => Answer = () => ({ status: 200, body: 'ok' })): Promise<Receiver> {
  const requests: Received[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const n = requests.length;
      requests.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      const { status, body = '', delayMs = 0 } = answer(n);
      const reply = (): void => {
        res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
      };
      if (delayMs === 0) return reply();
      const timer = setTimeout(() => {
        timers.delete(timer);
        reply();
      }, delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hooks/picket`,
    requests,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(receiver.close);
  return receiver;
}

function create(descriptor: OutputModuleDescriptor, fields: Record<string, string | number | boolean>): OutputModule {
  const module = descriptor.create({ name: 'test-output', oid: 'org-1', fields, dataDir: '/nonexistent' });
  cleanups.push(() => module.close());
  return module;
}

function record(seq: number, body: Record<string, unknown>): OutputRecord {
  return { seq, oid: 'org-1', sid: 'sensor-1', event_type: 'NEW_PROCESS', event_time: 1_700_000_000_000 + seq, body, json: JSON.stringify(body) };
}

const records = [
  record(1, { routing: { event_type: 'NEW_PROCESS', sid: 'sensor-1' }, event: { FILE_PATH: 'C:\\Windows\\notepad.exe', PID: 1 } }),
  record(2, { routing: { event_type: 'NEW_PROCESS' }, event: { text: 'unicode: é ✓ 🛰', PID: 2 } }),
  record(3, { routing: { event_type: 'DNS_REQUEST' }, event: { DOMAIN_NAME: 'example.com', nested: [1, { a: null }] } }),
];

function hmacHex(secret: string, bytes: Buffer): string {
  return createHmac('sha256', secret).update(bytes).digest('hex');
}

/** A port nothing listens on: a server is started and closed on it. */
async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hook`;
}

describe('webhook output: one POST per record', () => {
  it('posts each record as its own request with the exact JSON, in order, and no signature without a secret', async () => {
    const receiver = await startReceiver();
    const out = create(webhookModule, { dest_host: receiver.url });

    await out.send(records);

    expect(receiver.requests.map((r) => r.body.toString('utf8'))).toEqual(records.map((r) => r.json));
    for (const req of receiver.requests) {
      expect(req.url).toBe('/hooks/picket');
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['lc-signature']).toBeUndefined();
    }
    expect(out.batching).toEqual({ maxRecords: 100, maxWaitMs: 0 });
  });

  it('signs each body with Lc-Signature: it verifies with the secret and not with another one', async () => {
    const receiver = await startReceiver();
    const out = create(webhookModule, { dest_host: receiver.url, secret_key: 'the-shared-secret' });

    await out.send(records);

    expect(receiver.requests).toHaveLength(records.length);
    for (const req of receiver.requests) {
      const signature = req.headers['lc-signature'];
      expect(signature).toMatch(/^[0-9a-f]{64}$/);
      expect(signature).toBe(hmacHex('the-shared-secret', req.body));
      expect(signature).not.toBe(hmacHex('another-secret', req.body));
    }
  });

  it('sends the configured auth header with every request', async () => {
    const receiver = await startReceiver();
    const out = create(webhookModule, { dest_host: receiver.url, auth_header_name: 'Authorization', auth_header_value: 'Bearer s3cr3t' });

    await out.send(records.slice(0, 2));

    expect(receiver.requests.map((r) => r.headers.authorization)).toEqual(['Bearer s3cr3t', 'Bearer s3cr3t']);
  });

  it('a 500 answer rejects with the URL, status and answer, and stops the batch there', async () => {
    const receiver = await startReceiver((n) => (n === 1 ? { status: 500, body: 'database down\n' } : { status: 204 }));
    const out = create(webhookModule, { dest_host: receiver.url });

    const error = await out.send(records).then(
      () => undefined,
      (err: unknown) => err,
    );

    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(`webhook ${receiver.url}: HTTP 500 Internal Server Error: database down`);
    // In order and sequential: the third record was never attempted, the caller retries the whole batch.
    expect(receiver.requests.map((r) => r.body.toString())).toEqual([records[0]!.json, records[1]!.json]);
  });

  it('quotes at most 200 characters of a long error answer and leaves the query string out', async () => {
    const receiver = await startReceiver(() => ({ status: 503, body: 'x'.repeat(5000) }));
    const out = create(webhookModule, { dest_host: `${receiver.url}?token=do-not-show` });

    const error = (await out.send(records.slice(0, 1)).catch((err: unknown) => err)) as Error;

    expect(error.message).toBe(`webhook ${receiver.url}: HTTP 503 Service Unavailable: ${'x'.repeat(200)}`);
    expect(receiver.requests[0]!.url).toBe('/hooks/picket?token=do-not-show');
  });

  it('a receiver that is down rejects with the connection error', async () => {
    const url = await closedPortUrl();
    const out = create(webhookModule, { dest_host: url });

    await expect(out.send(records)).rejects.toThrow(new RegExp(`^webhook ${url}: connect ECONNREFUSED`));
  });

  it('a receiver slower than timeout_s rejects with a timeout error, without waiting for it', async () => {
    const receiver = await startReceiver(() => ({ status: 200, delayMs: 2000 }));
    const out = create(webhookModule, { dest_host: receiver.url, timeout_s: 1 });

    const started = Date.now();
    await expect(out.send(records.slice(0, 1))).rejects.toThrow(`webhook ${receiver.url}: no answer within 1 s (timeout)`);
    expect(Date.now() - started).toBeLessThan(1900);
    expect(receiver.requests).toHaveLength(1);
  });

  it('does not follow redirects: the signature and auth header are for the configured URL only', async () => {
    const server = http.createServer((_req, res) => res.writeHead(302, { location: 'http://elsewhere.invalid/' }).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const out = create(webhookModule, { dest_host: url, secret_key: 'k' });

    await expect(out.send(records.slice(0, 1))).rejects.toThrow(`webhook ${url}: HTTP 302 Found (redirect to http://elsewhere.invalid/ not followed)`);
  });

  it('refuses a configuration without a usable http(s) URL or with half an auth header', () => {
    const attempt = (fields: Record<string, string | number | boolean>): unknown => {
      try {
        webhookModule.create({ name: 'bad', oid: 'org-1', fields, dataDir: '/nonexistent' });
        return undefined;
      } catch (err) {
        return err;
      }
    };
    const missing = attempt({});
    expect(missing).toBeInstanceOf(OutputConfigError);
    expect(missing).toMatchObject({ field: 'dest_host', message: 'dest_host is required' });
    expect(attempt({ dest_host: 'ftp://example.com/x' })).toMatchObject({ field: 'dest_host', message: expect.stringContaining('http:// or https://') });
    expect(attempt({ dest_host: 'not a url' })).toMatchObject({ field: 'dest_host' });
    expect(attempt({ dest_host: 'https://user:pw@example.com/' })).toMatchObject({ field: 'dest_host', message: expect.stringContaining('credentials') });
    expect(attempt({ dest_host: 'https://example.com/', auth_header_name: 'Authorization' })).toMatchObject({ field: 'auth_header_value' });
    expect(attempt({ dest_host: 'https://example.com/', auth_header_name: 'Bad Header', auth_header_value: 'v' })).toMatchObject({ field: 'auth_header_name' });
    expect(attempt({ dest_host: 'https://example.com/' })).toBeUndefined();
  });
});

describe('webhook_bulk output: one POST per batch', () => {
  it('posts one JSON array per batch, records in order, built from their JSON text', async () => {
    const receiver = await startReceiver();
    const out = create(webhookBulkModule, { dest_host: receiver.url, secret_key: 'bulk-secret' });

    await out.send(records);
    await out.send(records.slice(0, 1));

    expect(receiver.requests).toHaveLength(2);
    const [first, second] = receiver.requests as [Received, Received];
    expect(first.body.toString('utf8')).toBe(`[${records.map((r) => r.json).join(',')}]`);
    expect(JSON.parse(first.body.toString('utf8'))).toEqual(records.map((r) => r.body));
    expect(JSON.parse(second.body.toString('utf8'))).toEqual([records[0]!.body]);
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.headers['content-encoding']).toBeUndefined();
    expect(first.headers['lc-signature']).toBe(hmacHex('bulk-secret', first.body));
  });

  it('with is_compression gzips the body, and the signature is over the gzipped bytes sent', async () => {
    const receiver = await startReceiver();
    const out = create(webhookBulkModule, { dest_host: receiver.url, secret_key: 'bulk-secret', is_compression: true });

    await out.send(records);

    expect(receiver.requests).toHaveLength(1);
    const req = receiver.requests[0]!;
    expect(req.headers['content-encoding']).toBe('gzip');
    const json = gunzipSync(req.body);
    expect(json.toString('utf8')).toBe(`[${records.map((r) => r.json).join(',')}]`);
    expect(req.headers['lc-signature']).toBe(hmacHex('bulk-secret', req.body));
    expect(req.headers['lc-signature']).not.toBe(hmacHex('bulk-secret', json));
  });

  it('rejects a failed batch with the status, and sends nothing for an empty batch', async () => {
    const receiver = await startReceiver(() => ({ status: 413, body: 'too large' }));
    const out = create(webhookBulkModule, { dest_host: receiver.url });

    await out.send([]);
    expect(receiver.requests).toHaveLength(0);
    await expect(out.send(records)).rejects.toThrow(`webhook ${receiver.url}: HTTP 413 Payload Too Large: too large`);
  });

  it('batches by max_records and sec_per_file', () => {
    expect(create(webhookBulkModule, { dest_host: 'https://example.com/' }).batching).toEqual({ maxRecords: 1000, maxWaitMs: 10_000 });
    expect(create(webhookBulkModule, { dest_host: 'https://example.com/', max_records: 50, sec_per_file: 120 }).batching).toEqual({ maxRecords: 50, maxWaitMs: 120_000 });
    expect(() => create(webhookBulkModule, { dest_host: 'https://example.com/', sec_per_file: 0 })).toThrow(OutputConfigError);
  });
});
