// "No accepted event is ever lost": SIGKILL the server while a sensor streams, start it again on the same
// data directory, and every acknowledged event is there; resends after the restart are stored once, and
// the server counts each one it recognised (picket_batches_duplicate_total, picket_events_duplicate_total).
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { startServerProcess, type ServerProcess } from './harness/processes.js';
import { apiClient, startTestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

function batch(seq: number, size: number): SensorEvent[] {
  return Array.from({ length: size }, (_, i) => ({ event_type: 'DURABLE', event_time: Date.now(), event: { seq, i } }));
}

/** The resend counters of a server's /metrics. */
async function duplicates(url: string): Promise<{ batches: number; events: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { batches: value('picket_batches_duplicate_total'), events: value('picket_events_duplicate_total') };
}

describe('durability across a server SIGKILL', () => {
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    if (servers[0]) rmSync(servers[0].dataDir, { recursive: true, force: true });
  });

  it('loses no acknowledged event and stores resent batches once', async () => {
    const first = await startServerProcess({ env: { PICKET_SQLITE_SYNC: 'full' } });
    servers.push(first);
    const streamId = crypto.randomUUID();
    const client = new ProtocolClient(first.url, 'msgpack');
    await client.hello({ installation_key: first.credentials.installation_key }, { streamId });
    const welcome = await client.welcome();
    const identity = welcome.identity!;
    const BATCH = 50;
    let seq = 0;
    // Stream batches without waiting, and kill the server while many are in flight.
    const sending = (async () => {
      while (client.ws.readyState === client.ws.OPEN && seq < 400) {
        seq++;
        client.sendEvents(seq, batch(seq, BATCH));
        if (seq % 10 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await client.waitForAck(20);
    first.kill('SIGKILL');
    await first.exited;
    await sending;
    await client.closed;
    const acked = client.ackedSeq;
    const sent = seq;
    expect(acked).toBeGreaterThanOrEqual(20);

    const second = await startServerProcess({ dataDir: first.dataDir, port: first.port });
    servers.push(second);
    const again = new ProtocolClient(second.url, 'msgpack');
    await again.hello({ sid: identity.sid, secret: identity.secret }, { streamId });
    const w2 = await again.welcome();
    // Everything acknowledged before the crash is still stored.
    expect(w2.ack_seq).toBeGreaterThanOrEqual(acked);
    // The sensor resends what it has not seen acknowledged (the server recognises what it already has).
    for (let s = acked + 1; s <= sent; s++) again.sendEvents(s, batch(s, BATCH));
    await again.waitForAck(sent);
    // The resent batches the crash had stored (acks lost) were recognised, and counted, one by one.
    expect(await duplicates(second.url)).toEqual({ batches: w2.ack_seq - acked, events: (w2.ack_seq - acked) * BATCH });
    again.close();
    await again.closed;

    const api = apiClient(second.url, second.credentials.api_key);
    const seen = new Map<string, number>();
    let cursor: string | null = null;
    await waitFor(async () => {
      seen.clear();
      cursor = null;
      do {
        const q: string = `/v1/insight/${second.credentials.oid}/${identity.sid}?start=0&end=9999999999&event_type=DURABLE&limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const res = await api<{ events: Array<{ event: { seq: number; i: number } }>; next_cursor: string | null }>('GET', q);
        for (const e of res.body.events) {
          const k = `${e.event.seq}:${e.event.i}`;
          seen.set(k, (seen.get(k) ?? 0) + 1);
        }
        cursor = res.body.next_cursor;
      } while (cursor);
      return seen.size === sent * BATCH;
    }, { timeoutMs: 20_000, message: 'every batch stored' });
    expect(seen.size).toBe(sent * BATCH);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    second.kill('SIGTERM');
    await second.exited;
  });
});

describe('resends at or below the stored mark', () => {
  it('a sensor resending stored batches after a reconnect gets them acknowledged again, counted as duplicates, stored once', async () => {
    const s = await startTestServer();
    try {
      const streamId = crypto.randomUUID();
      const first = new ProtocolClient(s.url, 'json');
      await first.hello({ installation_key: s.installationKey }, { streamId });
      const { identity } = await first.welcome();
      for (let seq = 1; seq <= 3; seq++) first.sendEvents(seq, batch(seq, 5));
      await first.waitForAck(3);
      first.close();
      await first.closed;
      expect(await duplicates(s.url)).toEqual({ batches: 0, events: 0 });

      // Same stream: the welcome says 3 is stored; the sensor resends 2 and 3 anyway, then a new batch 4.
      const again = new ProtocolClient(s.url, 'json');
      await again.hello({ sid: identity!.sid, secret: identity!.secret }, { streamId });
      expect((await again.welcome()).ack_seq).toBe(3);
      again.sendEvents(2, batch(2, 5));
      again.sendEvents(3, batch(3, 5));
      again.sendEvents(4, batch(4, 5));
      await again.waitForAck(4);
      expect(again.messages.filter((m) => m.t === 'ack').map((m) => (m as { seq: number }).seq)).toEqual([2, 3, 4]);
      expect(await duplicates(s.url)).toEqual({ batches: 2, events: 10 });
      again.close();
      await again.closed;

      const page = await s.server.store.queryTimeline({ oid: s.oid, sid: identity!.sid, start: 0, end: 9_999_999_999_999, eventType: 'DURABLE', limit: 1000 });
      const stored = page.events.map((json) => (JSON.parse(json) as { event: { seq: number; i: number } }).event).map((e) => `${e.seq}:${e.i}`);
      expect(stored.sort()).toEqual([1, 2, 3, 4].flatMap((seq) => [0, 1, 2, 3, 4].map((i) => `${seq}:${i}`)).sort());
    } finally {
      await s.close();
    }
  });
});
