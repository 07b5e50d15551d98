// The reference sensor's building blocks on their own: reconnect policy, offline buffer, identity file,
// host description.
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SensorEvent } from '../src/protocol/messages.js';
import { EventBuffer, batchEvents, frameBytes } from '../src/sensor/event-buffer.js';
import { architectureCode, collectHostInfo, formatMac, platformCode, type HostProbe } from '../src/sensor/host-info.js';
import { IdentityFile, IdentityFileError, type SensorIdentity } from '../src/sensor/identity-file.js';
import { ReconnectPolicy, parseRetryAfterMs } from '../src/sensor/reconnect-policy.js';
import { gatewayUrl } from '../src/sensor/sensor-connection.js';

const POSIX = process.platform !== 'win32';

describe('reconnect policy: exponential backoff with full jitter', () => {
  it('the n-th consecutive attempt waits in [0, min(cap, base·2^n)) and the ceiling doubles up to the cap', () => {
    const policy = new ReconnectPolicy({ baseMs: 1000, capMs: 60_000, random: () => 0.999999 });
    const delays = Array.from({ length: 10 }, () => policy.nextDelayMs());
    expect(delays).toEqual([999, 1999, 3999, 7999, 15_999, 31_999, 59_999, 59_999, 59_999, 59_999]);
    expect(policy.attempts).toBe(10);
  });

  it('never waits less than 0 nor as long as the cap, whatever the random source says', () => {
    for (const r of [0, 0.5, 0.999999999]) {
      const policy = new ReconnectPolicy({ random: () => r });
      for (let i = 0; i < 50; i++) {
        const d = policy.nextDelayMs();
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(60_000);
      }
    }
  });

  it('spreads waits over the whole window [0, cap) (full jitter, not equal jitter)', () => {
    const policy = new ReconnectPolicy({ baseMs: 1000, capMs: 8000 });
    for (let i = 0; i < 5; i++) policy.nextDelayMs(); // reach the cap
    const samples = Array.from({ length: 4000 }, () => policy.nextDelayMs());
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(8000);
    // Each eighth of the window gets roughly an eighth of the samples.
    const bins = new Array<number>(8).fill(0);
    for (const s of samples) bins[Math.floor(s / 1000)]!++;
    for (const b of bins) expect(b).toBeGreaterThan(4000 / 8 / 2);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(3500);
    expect(mean).toBeLessThan(4500);
  });

  it('resets after a session that stayed up long enough, not after a short one', () => {
    const policy = new ReconnectPolicy({ baseMs: 1000, capMs: 60_000, stableAfterMs: 30_000, random: () => 0.999 });
    for (let i = 0; i < 4; i++) policy.nextDelayMs();
    policy.sessionEnded(5000);
    expect(policy.attempts).toBe(4);
    expect(policy.ceilingMs).toBe(16_000);
    policy.sessionEnded(30_000);
    expect(policy.attempts).toBe(0);
    expect(policy.nextDelayMs()).toBeLessThan(1000);
  });

  it('honours a server-provided retry-after as a floor, still jittered above it', () => {
    const policy = new ReconnectPolicy({ random: () => 0.5 });
    expect(policy.nextDelayMs(30_000)).toBe(30_500);
    expect(parseRetryAfterMs('organization at its sensor quota; retry-after=45')).toBe(45_000);
    expect(parseRetryAfterMs('retry-after=0.5')).toBe(500);
    expect(parseRetryAfterMs('server shutting down')).toBeUndefined();
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
  });
});

function ev(i: number, size = 0): SensorEvent {
  return { event_type: 'TEST', event_time: 1_763_800_000_000 + i, event: { i, pad: 'x'.repeat(size) } };
}
const json = (seq: number, events: SensorEvent[]): string => JSON.stringify({ t: 'events', seq, events });

describe('event buffer: bounded, drop-oldest, held until acknowledged', () => {
  it('numbers batches 1, 2, 3… and keeps them until a cumulative ack releases them', () => {
    const buffer = new EventBuffer({ maxEvents: 100, maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) buffer.push(ev(i));
    const a = buffer.nextBatch(4, 1 << 20, json)!;
    const b = buffer.nextBatch(4, 1 << 20, json)!;
    const c = buffer.nextBatch(4, 1 << 20, json)!;
    expect([a.batch.seq, b.batch.seq, c.batch.seq]).toEqual([1, 2, 3]);
    expect(batchEvents(c.batch).map((e) => e.event.i)).toEqual([8, 9]);
    expect(buffer.nextBatch(4, 1 << 20, json)).toBeUndefined();
    expect(buffer.size).toBe(10);
    expect(buffer.ack(2)).toBe(8);
    expect(buffer.size).toBe(2);
    expect(buffer.unackedBatches.map((x) => x.seq)).toEqual([3]);
    expect(buffer.ack(2)).toBe(0); // acks are idempotent
    expect(buffer.ack(3)).toBe(2);
    expect(buffer.size).toBe(0);
    expect(buffer.bytes).toBe(0);
    expect(buffer.takeDropReport()).toBeUndefined();
  });

  it('over its event limit drops the oldest events and counts them, with the time of the first drop', () => {
    let now = 1000;
    const buffer = new EventBuffer({ maxEvents: 5, maxBytes: 1 << 20, now: () => now });
    for (let i = 0; i < 5; i++) buffer.push(ev(i));
    expect(buffer.droppedSinceReport).toBeUndefined();
    now = 2000;
    buffer.push(ev(5));
    now = 3000;
    buffer.push(ev(6));
    buffer.push(ev(7));
    expect(buffer.size).toBe(5);
    const { batch } = buffer.nextBatch(100, 1 << 20, json)!;
    expect(batchEvents(batch).map((e) => e.event.i)).toEqual([3, 4, 5, 6, 7]);
    const oneEventBytes = Buffer.byteLength(JSON.stringify(ev(0)));
    expect(buffer.takeDropReport()).toEqual({ droppedEvents: 3, droppedBytes: 3 * oneEventBytes, sinceMs: 2000 });
    expect(buffer.takeDropReport()).toBeUndefined();
  });

  it('over its byte limit drops the oldest events until the new one fits', () => {
    const size = Buffer.byteLength(JSON.stringify(ev(10, 1000)));
    const buffer = new EventBuffer({ maxEvents: 1000, maxBytes: size * 3 + 10, now: () => 42 });
    for (let i = 10; i < 13; i++) buffer.push(ev(i, 1000));
    expect(buffer.takeDropReport()).toBeUndefined();
    buffer.push(ev(13, 1000));
    buffer.push(ev(14, 1000));
    expect(buffer.size).toBe(3);
    expect(buffer.bytes).toBe(size * 3);
    expect(buffer.takeDropReport()).toEqual({ droppedEvents: 2, droppedBytes: 2 * size, sinceMs: 42 });
    const { batch } = buffer.nextBatch(100, 1 << 20, json)!;
    expect(batchEvents(batch).map((e) => e.event.i)).toEqual([12, 13, 14]);
  });

  it('drops queued events before batches already sent, and forgets a batch emptied by drops', () => {
    const buffer = new EventBuffer({ maxEvents: 4, maxBytes: 1 << 20 });
    for (let i = 0; i < 4; i++) buffer.push(ev(i));
    buffer.nextBatch(2, 1 << 20, json); // seq 1: 0, 1
    buffer.push(ev(4)); // drops 2 (queued), not 0
    expect(batchEvents(buffer.unackedBatches[0]!).map((e) => e.event.i)).toEqual([0, 1]);
    buffer.nextBatch(10, 1 << 20, json); // seq 2: 3, 4
    buffer.push(ev(5)); // queue empty: 5 is queued, the oldest sent event (0) goes
    buffer.push(ev(6)); // 5 is now the only queued event and the oldest queued: it goes
    expect(buffer.unackedBatches.map((b) => batchEvents(b).map((e) => e.event.i))).toEqual([[1], [3, 4]]);
    buffer.push(ev(7));
    buffer.push(ev(8));
    expect(buffer.size).toBe(4);
    // 2, 5, 6, 7 were only queued: lost. 0 was in batch 1, on the wire: lost only if the cloud did not store batch 1.
    expect(buffer.takeDropReport()?.droppedEvents).toBe(4);
    expect(buffer.uncertainDrops).toBe(1);
    buffer.welcomed(0);
    expect(buffer.takeDropReport()?.droppedEvents).toBe(1);
  });

  it('an event dropped from a batch on the wire counts only when the cloud says it did not store that batch', () => {
    let now = 1000;
    const bytes = Buffer.byteLength(JSON.stringify(ev(0)));
    /** A full buffer of two events, both sent as batch 1 (whose ack is lost), then one more event: 0 leaves batch 1. */
    const overflowed = (): EventBuffer => {
      const buffer = new EventBuffer({ maxEvents: 2, maxBytes: 1 << 20, now: () => now });
      buffer.push(ev(0));
      buffer.push(ev(1));
      buffer.nextBatch(10, 1 << 20, json);
      now = 2000;
      buffer.push(ev(2));
      expect(batchEvents(buffer.unackedBatches[0]!).map((e) => e.event.i)).toEqual([1]);
      expect(buffer.takeDropReport()).toBeUndefined();
      expect(buffer.uncertainDrops).toBe(1);
      return buffer;
    };

    // The next welcome says batch 1 is stored: event 0 was not lost.
    let buffer = overflowed();
    expect(buffer.welcomed(1)).toBe(1);
    expect(buffer.takeDropReport()).toBeUndefined();
    expect(buffer.uncertainDrops).toBe(0);

    // It says batch 1 is not stored: event 0 is lost, since the time it left the buffer (not the welcome's).
    buffer = overflowed();
    now = 3000;
    buffer.push(ev(3)); // 2 is queued, and older: it goes, for certain
    now = 9000;
    buffer.welcomed(0);
    expect(buffer.takeDropReport()).toEqual({ droppedEvents: 2, droppedBytes: 2 * bytes, sinceMs: 2000 });
    expect(buffer.uncertainDrops).toBe(0);

    // An ack of batch 1 in the same session says the same as a covering welcome.
    buffer = overflowed();
    buffer.ack(1);
    expect(buffer.takeDropReport()).toBeUndefined();
    expect(buffer.uncertainDrops).toBe(0);

    // After a welcome that did not cover it, batch 1 is off the wire until resent: what leaves it meanwhile is
    // lost for certain (the resend will not carry it). Once resent, it is on the wire again.
    buffer = new EventBuffer({ maxEvents: 2, maxBytes: 1 << 20, now: () => now });
    buffer.push(ev(0));
    buffer.push(ev(1));
    buffer.nextBatch(10, 1 << 20, json);
    buffer.welcomed(0);
    buffer.push(ev(2)); // 0 leaves batch 1 before its resend
    expect(buffer.takeDropReport()).toMatchObject({ droppedEvents: 1 });
    buffer.sent(1);
    buffer.nextBatch(10, 1 << 20, json); // seq 2: 2
    buffer.push(ev(3)); // 1 leaves batch 1 (resent with it): uncertain again
    expect(buffer.unackedBatches.map((b) => b.seq)).toEqual([2]);
    expect(buffer.uncertainDrops).toBe(1);
    buffer.ack(2); // covers batch 1 (emptied and forgotten, a gap): the resend holding 1 was stored
    expect(buffer.takeDropReport()).toBeUndefined();
    expect(buffer.uncertainDrops).toBe(0);
  });

  it('keeps frames under max_frame_bytes: splits by size and drops (and counts) an event too big for any frame', () => {
    const buffer = new EventBuffer({ maxEvents: 1000, maxBytes: 1 << 24 });
    buffer.push(ev(0, 300));
    buffer.push(ev(1, 5000)); // larger than a frame
    for (let i = 2; i < 8; i++) buffer.push(ev(i, 300));
    const sent: number[][] = [];
    for (;;) {
      const next = buffer.nextBatch(100, 1024, json);
      if (!next) break;
      expect(frameBytes(next.frame)).toBeLessThanOrEqual(1024);
      sent.push(batchEvents(next.batch).map((e) => e.event.i as number));
    }
    expect(sent.flat()).toEqual([0, 2, 3, 4, 5, 6, 7]);
    expect(buffer.unackedBatches.map((b) => b.seq)).toEqual(sent.map((_, i) => i + 1));
    expect(buffer.takeDropReport()?.droppedEvents).toBe(1);
  });

  it('tells when a given event has left the buffer', () => {
    const buffer = new EventBuffer({ maxEvents: 10, maxBytes: 1 << 20 });
    const first = buffer.push(ev(0));
    const second = buffer.push(ev(1));
    buffer.nextBatch(1, 1 << 20, json);
    buffer.nextBatch(1, 1 << 20, json);
    expect(buffer.isReleased(first)).toBe(false);
    buffer.ack(1);
    expect(buffer.isReleased(first)).toBe(true);
    expect(buffer.isReleased(second)).toBe(false);
    buffer.ack(2);
    expect(buffer.isReleased(second)).toBe(true);
  });
});

describe('identity file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = (): string => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'picket-identity-'));
    dirs.push(d);
    return d;
  };
  const identity: SensorIdentity = {
    sid: '7b6f0a52-3a4e-4a53-9df4-0e3f6f0b3d11', secret: 's3cret', oid: '11111111-2222-4333-8444-555555555555', iid: '66666666-7777-4888-9999-000000000000', url: 'http://127.0.0.1:4830',
  };

  it('round-trips, in a directory it creates private, as a file only its user can read', async () => {
    const stateDir = path.join(tmp(), 'nested', 'sensor');
    const file = new IdentityFile(stateDir);
    expect(await file.load()).toBeUndefined();
    await file.save(identity);
    expect(await new IdentityFile(stateDir).load()).toEqual(identity);
    if (POSIX) {
      expect(statSync(file.path).mode & 0o777).toBe(0o600);
      expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    }
  });

  it('replaces the file atomically: no temporary file is left and the old content is never half-written', async () => {
    const stateDir = tmp();
    const file = new IdentityFile(stateDir);
    await file.save(identity);
    const before = statSync(file.path).ino;
    await file.save({ ...identity, secret: 'rotated' });
    expect(readdirSync(stateDir)).toEqual(['identity.json']);
    expect((await file.load())?.secret).toBe('rotated');
    // A rename, not an in-place rewrite: the file is a new inode.
    if (POSIX) expect(statSync(file.path).ino).not.toBe(before);
  });

  it('tightens permissions someone loosened', async () => {
    if (!POSIX) return;
    const stateDir = tmp();
    const file = new IdentityFile(stateDir);
    await file.save(identity);
    chmodSync(file.path, 0o644);
    await file.load();
    expect(statSync(file.path).mode & 0o777).toBe(0o600);
  });

  it('refuses a corrupt file with a clear error naming the file and what to do', async () => {
    const stateDir = tmp();
    const file = new IdentityFile(stateDir);
    writeFileSync(file.path, '{"sid": "7b6f0a52-3a4e', { mode: 0o600 });
    await expect(file.load()).rejects.toThrow(IdentityFileError);
    await expect(file.load()).rejects.toThrow(/identity\.json is corrupt: not JSON.*--key/);
    writeFileSync(file.path, JSON.stringify({ ...identity, sid: 'not-a-uuid' }));
    await expect(file.load()).rejects.toThrow(/"sid" is not a UUID/);
    writeFileSync(file.path, JSON.stringify({ sid: identity.sid, oid: identity.oid, iid: identity.iid }));
    await expect(file.load()).rejects.toThrow(/"secret" is missing/);
  });

  it('remove() forgets the identity', async () => {
    const file = new IdentityFile(tmp());
    await file.save(identity);
    await file.remove();
    expect(await file.load()).toBeUndefined();
  });
});

describe('host description', () => {
  const probe = (over: Partial<HostProbe> = {}): HostProbe => ({
    hostname: () => 'box',
    platform: () => 'linux',
    arch: () => 'x64',
    networkInterfaces: () => ({
      lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: null }],
      docker0: [{ address: '172.17.0.1', netmask: '255.255.0.0', family: 'IPv4', mac: '02:42:ac:11:00:01', internal: false, cidr: null }],
      eth0: [{ address: '10.0.0.5', netmask: '255.255.255.0', family: 'IPv4', mac: '42:01:0a:80:00:02', internal: false, cidr: null }],
    }),
    readFile: (f) => (f === '/etc/machine-id' ? 'abc123\n' : undefined),
    ...over,
  });

  it('reports codes from domain/platform.ts, the LAN address and MAC of the primary interface, and kernel false', () => {
    const host = collectHostInfo({ probe: probe() });
    expect(host).toMatchObject({ hostname: 'box', plat: 0x20000000, arch: 2, int_ip: '10.0.0.5', mac: '42-01-0A-80-00-02', kernel: false, is_segregated: false });
    expect(host.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(host.version).toMatch(/^picket-sensor\//);
    expect(collectHostInfo({ probe: probe(), hostname: 'override' }).hostname).toBe('override');
    expect([platformCode('win32'), platformCode('darwin'), architectureCode('arm64'), architectureCode('ia32'), architectureCode('x64', true)]).toEqual([0x10000000, 0x30000000, 4, 1, 5]);
    expect(formatMac('aa:bb:cc:dd:ee:ff')).toBe('AA-BB-CC-DD-EE-FF');
  });

  it('has a stable fingerprint that ignores container interfaces and changes with the machine id', () => {
    const a = collectHostInfo({ probe: probe() }).fingerprint;
    expect(collectHostInfo({ probe: probe() }).fingerprint).toBe(a);
    const withVeth = probe({
      networkInterfaces: () => ({ ...probe().networkInterfaces(), veth1234: [{ address: '169.254.1.1', netmask: '255.255.0.0', family: 'IPv4', mac: '0a:0b:0c:0d:0e:0f', internal: false, cidr: null }] }),
    });
    expect(collectHostInfo({ probe: withVeth }).fingerprint).toBe(a);
    expect(collectHostInfo({ probe: probe({ readFile: () => 'other-machine' }) }).fingerprint).not.toBe(a);
    // The real machine: same value twice.
    expect(collectHostInfo().fingerprint).toBe(collectHostInfo().fingerprint);
  });
});

describe('cloud URL', () => {
  it('accepts http(s) and ws(s), with or without the /sensor path', () => {
    expect(gatewayUrl('http://127.0.0.1:4830')).toBe('ws://127.0.0.1:4830/sensor');
    expect(gatewayUrl('https://picket.example.com/')).toBe('wss://picket.example.com/sensor');
    expect(gatewayUrl('ws://h:1/sensor')).toBe('ws://h:1/sensor');
    expect(gatewayUrl('https://h/picket')).toBe('wss://h/picket/sensor');
    expect(() => gatewayUrl('ftp://h')).toThrow(/scheme/);
    expect(() => gatewayUrl('nonsense')).toThrow(/invalid cloud URL/);
  });
});
