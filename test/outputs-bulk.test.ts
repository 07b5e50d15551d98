// webhook_bulk through the whole server: the delivery loop batches by size (max_records) and by time
// (sec_per_file), every event arrives once, in order, and each request is signed.
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Post {
  at: number;
  events: Array<{ n: number }>;
  signed: boolean;
}

describe('webhook_bulk output (real server, real HTTP receiver)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('batches by size and by time, in order, signed, gzipped', async () => {
    const posts: Post[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const signed = req.headers['lc-signature'] === createHmac('sha256', 'bulk-secret').update(raw).digest('hex');
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        posts.push({ at: Date.now(), events: JSON.parse(body.toString('utf8')) as Post['events'], signed });
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => (receiver.closeAllConnections(), receiver.close(() => r()))));
    const s = await startTestServer();
    cleanups.push(() => s.close());
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/bulk`;
    const created = await apiClient(s.url, s.apiKey)('POST', `/v1/outputs/${s.oid}`, {
      name: 'bulk', module: 'webhook_bulk', type: 'event', dest_host: url, secret_key: 'bulk-secret', max_records: 50, sec_per_file: 1,
      is_compression: true, event_white_list: 'BULK', is_no_routing: true,
    });
    expect(created.status).toBe(200);

    const client = new ProtocolClient(s.url, 'json');
    await client.hello({ installation_key: s.installationKey }, { streamId: crypto.randomUUID() });
    await client.welcome();
    cleanups.push(() => client.close());
    const events: SensorEvent[] = Array.from({ length: 120 }, (_, n) => ({ event_type: 'BULK', event_time: Date.now(), event: { n } }));
    const sentAt = Date.now();
    client.sendEvents(1, events);
    await client.waitForAck(1);
    await waitFor(() => posts.reduce((k, p) => k + p.events.length, 0) === 120, { message: 'all 120 delivered' });
    // Two full batches go at once; the last 20 wait for sec_per_file.
    expect(posts.map((p) => p.events.length)).toEqual([50, 50, 20]);
    expect(posts[2]!.at - sentAt).toBeGreaterThanOrEqual(900);
    expect(posts.flatMap((p) => p.events.map((e) => e.n))).toEqual(Array.from({ length: 120 }, (_, n) => n));
    expect(posts.every((p) => p.signed)).toBe(true);
  });
});
