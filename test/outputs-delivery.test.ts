// Output delivery with a real HTTP receiver through the whole server: the webhook signature, a
// destination down for 30 seconds (with and without a server restart during the outage), and a slow
// webhook that holds back nothing else.
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFileSync, existsSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Received {
  body: string;
  signature: string | undefined;
}

/** A real HTTP receiver that records every POST; it can be stopped and started again on the same port. */
class Receiver {
  readonly received: Received[] = [];
  private server: Server | null = null;
  port = 0;

  constructor(private readonly delayMs = 0) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = () => {
          this.received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['lc-signature'] as string | undefined });
          res.end('ok');
        };
        if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  events(): Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }> {
    return this.received.map((r) => JSON.parse(r.body) as { routing: Record<string, unknown>; event: Record<string, unknown> });
  }
}

function batch(from: number, n: number): SensorEvent[] {
  return Array.from({ length: n }, (_, i) => ({ event_type: 'HOOK_TEST', event_time: Date.now(), event: { n: from + i } }));
}

describe('output delivery through a real HTTP receiver', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function receiver(delayMs = 0): Promise<Receiver> {
    const r = new Receiver(delayMs);
    await r.start();
    cleanups.push(() => r.stop());
    return r;
  }

  async function connect(s: TestServer, identity?: { sid: string; secret: string }, streamId = crypto.randomUUID()) {
    const client = new ProtocolClient(s.url, 'msgpack');
    await client.hello(identity ?? { installation_key: s.installationKey }, { streamId });
    const welcome = await client.welcome();
    cleanups.push(() => client.close());
    const given = welcome.identity ?? identity!;
    return { client, identity: { sid: given.sid, secret: given.secret }, streamId, sid: welcome.sid };
  }

  async function hookOutput(s: TestServer, r: Receiver, name: string, extra: Record<string, unknown> = {}): Promise<void> {
    const res = await apiClient(s.url, s.apiKey)('POST', `/v1/outputs/${s.oid}`, { name, module: 'webhook', type: 'event', dest_host: r.url, secret_key: 'hook-secret', event_white_list: 'HOOK_TEST', ...extra });
    expect(res.status).toBe(200);
  }

  for (const restart of [false, true]) {
    it(`a destination down for 30 s, then back: everything arrives once, in order, signed${restart ? ' (server restarted during the outage)' : ''}`, async () => {
      let s = await startTestServer({ outputRetryBaseS: 0.2, outputRetryCapS: 2 });
      const { dataDir, port } = s;
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      cleanups.push(() => s.close({ keepData: true }));
      const r = await receiver();
      await hookOutput(s, r, 'siem');
      const first = await connect(s);
      first.client.sendEvents(1, batch(0, 50));
      await first.client.waitForAck(1);
      await waitFor(() => r.received.length === 50, { message: 'first 50 delivered' });

      await r.stop();
      const downAt = Date.now();
      first.client.sendEvents(2, batch(50, 100));
      await first.client.waitForAck(2); // ingestion does not wait for the output
      let sensor = first;
      if (restart) {
        first.client.close();
        await s.close({ keepData: true });
        s = await startTestServer({ dataDir, port, outputRetryBaseS: 0.2, outputRetryCapS: 2 });
        cleanups.push(() => s.close({ keepData: true }));
        sensor = await connect(s, first.identity, first.streamId);
      }
      sensor.client.sendEvents(3, batch(150, 50));
      await sensor.client.waitForAck(3);
      await waitFor(async () => (await apiClient(s.url, s.apiKey)<{ errors: unknown[] }>('GET', `/v1/errors/${s.oid}`)).body.errors.length === 1, { message: 'the outage is reported' });
      await waitFor(() => Date.now() - downAt >= 30_000, { timeoutMs: 35_000, intervalMs: 500, message: '30 s of outage' });
      expect(r.received.length).toBe(50);

      await r.start(); // same port
      await waitFor(() => r.received.length >= 200, { timeoutMs: 20_000, message: 'all 200 after the destination came back' });
      await waitFor(async () => (await apiClient(s.url, s.apiKey)<{ errors: unknown[] }>('GET', `/v1/errors/${s.oid}`)).body.errors.length === 0, { message: 'error cleared' });
      expect(r.received).toHaveLength(200);
      expect(r.events().map((e) => e.event.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      expect(new Set(r.events().map((e) => e.routing.event_id)).size).toBe(200);
      for (const got of r.received) {
        expect(got.signature).toBe(createHmac('sha256', 'hook-secret').update(got.body).digest('hex'));
        expect(got.signature).not.toBe(createHmac('sha256', 'another-secret').update(got.body).digest('hex'));
      }
    }, 90_000);
  }

  it('a webhook answering in 2 s holds back neither ingestion nor the other outputs', async () => {
    const s = await startTestServer();
    cleanups.push(() => s.close());
    const slow = await receiver(2000);
    const fast = await receiver();
    await hookOutput(s, slow, 'slow');
    await hookOutput(s, fast, 'fast');
    await apiClient(s.url, s.apiKey)('POST', `/v1/outputs/${s.oid}`, { name: 'archive', module: 'file', type: 'event', dest_path: 'archive.jsonl', event_white_list: 'HOOK_TEST' });
    const { client } = await connect(s);
    for (let seq = 1; seq <= 10; seq++) client.sendEvents(seq, batch((seq - 1) * 100, 100));
    await client.waitForAck(10);
    const file = path.join(s.dataDir, 'outputs', 'archive.jsonl');
    await waitFor(() => fast.received.length === 1000 && existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 1000, { message: 'the other outputs got everything' });
    // Meanwhile the slow webhook has taken a handful at most (2 s each): nothing above waited for it.
    expect(slow.received.length).toBeLessThan(10);
    const list = await apiClient(s.url, s.apiKey)<Record<string, Record<string, { status: { state: string } }>>>('GET', `/v1/outputs/${s.oid}`);
    expect(list.body[s.oid]!.slow!.status.state).toBe('running');
    await waitFor(async () => {
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      return Number(/picket_output_lag_events\{oid="[^"]+",output="slow"\} (\d+)/.exec(metrics)?.[1] ?? 0) > 900;
    }, { message: 'the slow output\'s queue shows in picket_output_lag_events' });
    expect(fast.events().map((e) => e.event.n)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  }, 30_000);
});
