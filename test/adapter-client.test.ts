// The adapter's USP client against a real WebSocket server speaking the server side of docs/usp.md
// (harness/adapter-usp-server.ts), with a real disk buffer: ack requests, the window, bo, re, resends with
// the original x after a reconnect or a restart, refused keys and refused messages.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskBuffer } from '../src/adapter/disk-buffer.js';
import { UspClient } from '../src/adapter/usp-client.js';
import { connectionHeader, uspUrl, type AdapterIdentity } from '../src/adapter/usp-header.js';
import { silentLogger } from '../src/observability/logger.js';
import { UspTestServer } from './harness/adapter-usp-server.js';
import { freePort } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

const identity: AdapterIdentity = {
  oid: '8cbe27f4-bfa1-4afb-ba19-138cd51389cd',
  installationKey: 'a1b2c3d4-0000-4000-8000-000000000001.secret',
  hostname: 'relay-01',
  seedKey: 'relay-01-seed',
  platform: 'text',
  mapping: { event_type_path: 'type' },
};

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function stateDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-adapter-client-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function server(options: Parameters<typeof UspTestServer.start>[0] = {}): Promise<UspTestServer> {
  const s = await UspTestServer.start(options);
  cleanups.push(() => s.close());
  return s;
}

function openBuffer(dir: string): DiskBuffer {
  const buffer = DiskBuffer.open({ stateDir: dir, maxBytes: 16 * 1024 * 1024, fsyncIntervalMs: 1000, logger: silentLogger() });
  cleanups.push(() => buffer.close());
  return buffer;
}

function startClient(url: string, buffer: DiskBuffer, compressed = true): UspClient {
  const client = new UspClient({ url: uspUrl(url), header: connectionHeader(identity, buffer.instanceId, compressed), queue: buffer, logger: silentLogger(), reconnect: { baseMs: 50, capMs: 200 } });
  client.start();
  cleanups.push(() => client.stop());
  return client;
}

describe('USP client', () => {
  it('sends the connection header of docs/usp.md §2 and messages numbered from 1, gzip-compressed msgpack', async () => {
    const s = await server({ window: 8 });
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    await waitFor(() => client.isReady && client.currentWindow === 8, { message: 'ready with the window' });
    for (let i = 1; i <= 10; i++) buffer.append({ t: `line ${i}`, e: 'app_log', s: 1_763_000_000_000 + i });
    await waitFor(() => buffer.size === 0, { message: 'everything acknowledged' });

    expect(s.headers).toEqual([{
      version: 2, oid: identity.oid, iid: identity.installationKey, host_name: 'relay-01', platform: 'text', architecture: 'usp_adapter',
      sensor_seed_key: 'relay-01-seed', instance_id: buffer.instanceId, is_compressed: true, data_format: 'msgpack', mapping: { event_type_path: 'type' },
    }]);
    expect(s.received.map((m) => m.x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(s.received[2]!.fields).toEqual({ t: 'line 3', e: 'app_log', s: 1_763_000_000_003 });
    // Window 8: an ack is asked at every multiple of 4, and on the last message when nothing more is queued.
    expect(s.received.filter((m) => m.a).map((m) => m.x)).toEqual([4, 8, 10]);
    expect(client.stats.ackedThrough).toBe(10);
    expect(buffer.stats.acknowledged).toBe(10);
  });

  it('ships uncompressed when the header says so', async () => {
    const s = await server();
    const buffer = openBuffer(stateDir());
    startClient(s.url, buffer, false);
    buffer.append({ j: { user: 'root', n: 1 } });
    await waitFor(() => buffer.size === 0, { message: 'acknowledged' });
    expect(s.headers[0]!.is_compressed).toBe(false);
    expect(s.received[0]!.fields).toEqual({ j: { user: 'root', n: 1 } });
  });

  it('never has more than the window in flight, and goes on as acks arrive', async () => {
    const s = await server({ window: 4 });
    s.holdAcks = true;
    const buffer = openBuffer(stateDir());
    startClient(s.url, buffer);
    for (let i = 1; i <= 22; i++) buffer.append({ t: `line ${i}` });
    let acked = 0;
    while (s.stored.size < 22) {
      const expected = Math.min(22, acked + 4);
      await waitFor(() => s.received.length >= expected, { message: `${expected} messages received` });
      acked = expected;
      s.releaseAcks();
    }
    await waitFor(() => buffer.size === 0, { message: 'everything acknowledged' });
    expect(s.maxInFlight).toBe(4);
    expect(s.received.map((m) => m.x)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1));
  });

  it('asks an ack for each line of a trickle, so single lines are released too', async () => {
    const s = await server({ window: 1024 });
    const buffer = openBuffer(stateDir());
    startClient(s.url, buffer);
    for (let i = 1; i <= 3; i++) {
      buffer.append({ t: `slow line ${i}` });
      await waitFor(() => buffer.size === 0, { message: `line ${i} acknowledged` });
    }
    expect(s.received.map((m) => [m.x, m.a])).toEqual([[1, true], [2, true], [3, true]]);
  });

  it('pauses sending for the duration of bo, a newer bo replacing the pending one', async () => {
    const s = await server();
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    await waitFor(() => client.isReady, { message: 'ready' });
    s.control({ v: 'bo', dur: 30 });
    s.control({ v: 'bo', dur: 1 });
    await waitFor(() => client.stats.backoffs === 2, { message: 'both bo received' });
    const t0 = Date.now();
    buffer.append({ t: 'after backoff' });
    await waitFor(() => s.stored.size === 1, { timeoutMs: 10_000, message: 'the message after the backoff' });
    const waited = s.received[0]!.at - t0;
    expect(waited).toBeGreaterThanOrEqual(850);
    expect(waited).toBeLessThan(10_000);
  });

  it('on re, reconnects and resends every unacknowledged message oldest first with its original x', async () => {
    const s = await server();
    s.holdAcks = true;
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    for (let i = 1; i <= 5; i++) buffer.append({ t: `line ${i}` });
    await waitFor(() => s.received.length === 5, { message: 'five received, none acknowledged' });
    s.holdAcks = false;
    s.reconnectAll();
    await waitFor(() => buffer.size === 0, { message: 'acknowledged after the reconnect' });
    buffer.append({ t: 'line 6' });
    await waitFor(() => buffer.size === 0, { message: 'a new line after the reconnect' });

    expect(s.closes[0]!.code).toBe(1012);
    expect(s.headers.map((h) => h.instance_id)).toEqual([buffer.instanceId, buffer.instanceId]);
    expect(s.received.filter((m) => m.connection === 2).map((m) => m.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.storedTexts()).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6']);
    expect(client.stats.resent).toBe(5);
  });

  it('after a cut connection, buffers meanwhile and delivers everything once', async () => {
    const s = await server({ window: 16 });
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    s.holdAcks = true;
    for (let i = 1; i <= 10; i++) buffer.append({ t: `line ${i}` });
    await waitFor(() => s.received.length === 10, { message: 'ten received' });
    s.cutAll();
    for (let i = 11; i <= 20; i++) buffer.append({ t: `line ${i}` });
    s.holdAcks = false;
    await waitFor(() => buffer.size === 0, { message: 'all acknowledged after the cut' });
    expect(client.stats.connections).toBe(2);
    expect(s.storedTexts()).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
    // The second connection starts with the oldest unacknowledged message.
    expect(s.received.find((m) => m.connection === 2)!.x).toBe(1);
  });

  it('keeps retrying until the cloud is up, then delivers what was buffered', async () => {
    const port = await freePort();
    const buffer = openBuffer(stateDir());
    const client = startClient(`http://127.0.0.1:${port}`, buffer);
    buffer.append({ t: 'buffered while the cloud is down' });
    await waitFor(() => buffer.stats.appended === 1 && !client.isReady, { message: 'not connected' });
    const s = await server({ port });
    await waitFor(() => buffer.size === 0, { message: 'delivered once the cloud is up' });
    expect(s.storedTexts()).toEqual(['buffered while the cloud is down']);
  });

  it('after a restart on the same state directory, resends the unacknowledged messages with their original x', async () => {
    const s = await server();
    s.holdAcks = true;
    const dir = stateDir();
    const first = DiskBuffer.open({ stateDir: dir, maxBytes: 1 << 20, fsyncIntervalMs: 1000, logger: silentLogger() });
    const client1 = startClient(s.url, first);
    for (let i = 1; i <= 4; i++) first.append({ t: `line ${i}` });
    await waitFor(() => s.received.length === 4, { message: 'four received, none acknowledged' });
    await client1.stop();
    first.close();

    s.holdAcks = false;
    const second = openBuffer(dir);
    expect(second.instanceId).toBe(first.instanceId);
    startClient(s.url, second);
    second.append({ t: 'line 5' });
    await waitFor(() => second.size === 0, { message: 'acknowledged after the restart' });
    const resent = s.received.filter((m) => m.connection === 2);
    expect(resent.slice(0, 4).map((m) => [m.x, m.fields.t])).toEqual([[1, 'line 1'], [2, 'line 2'], [3, 'line 3'], [4, 'line 4']]);
    // A new line never reuses a number: it comes after the reserved block.
    expect(resent[4]!.x).toBeGreaterThan(4);
    expect(s.headers.map((h) => h.instance_id)).toEqual([first.instanceId, first.instanceId]);
    expect(s.storedTexts()).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
  });

  it('stops for good when the cloud refuses the key', async () => {
    const s = await server({ refuseHeader: () => ({ code: 4003, err: 'invalid installation key' }) });
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    const fatal = await client.fatal;
    expect(fatal.code).toBe(4003);
    expect(fatal.message).toContain('invalid installation key');
    expect(client.isReady).toBe(false);
  });

  it('finds a message the cloud refuses, drops it, and delivers everything else once', async () => {
    const s = await server({ refuseMessage: (m) => (m.t === 'poison' ? 'events[0].event_type: CONNECTED is produced by the cloud' : undefined) });
    const buffer = openBuffer(stateDir());
    const client = startClient(s.url, buffer);
    for (const t of ['ok 1', 'ok 2', 'poison', 'ok 3', 'ok 4']) buffer.append({ t });
    await waitFor(() => buffer.size === 0, { message: 'all released' });
    expect(s.storedTexts()).toEqual(['ok 1', 'ok 2', 'ok 3', 'ok 4']);
    expect(client.stats.rejected).toBe(1);
    expect(buffer.stats.rejected).toBe(1);
    expect(s.closes.filter((c) => c.code === 4000)).toHaveLength(2);

    // Past the refused message, lines go at full speed again: one ack for a burst.
    const before = s.received.length;
    for (let i = 5; i <= 8; i++) buffer.append({ t: `ok ${i}` });
    await waitFor(() => buffer.size === 0, { message: 'the next burst' });
    expect(s.received.slice(before).map((m) => m.a)).toEqual([false, false, false, true]);
  });
});
