// Sensor-hours of the usage meter (docs/schedule-and-billing.md), on a real embedded store and an injected
// clock: live sessions are credited at each sample, and a session that ends is credited up to its end at
// once — however short, split at period boundaries, and never counted again by a later sample.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/observability/logger.js';
import { UsageMeter, reportedAmount, type MeteredSession } from '../src/services/usage-meter.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const P0 = Date.UTC(2026, 0, 5, 0, 0, 0);

describe('usage meter: sensor-hours', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function meter(start: number): Promise<{ meter: UsageMeter; online: MeteredSession[]; setClock: (t: number) => void; store: SqliteStore }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'picket-meter-'));
    const store = SqliteStore.open({ path: path.join(dir, 'picket.db'), synchronous: 'normal' });
    await store.migrate();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => store.close());
    let clock = start;
    const online: MeteredSession[] = [];
    const m = new UsageMeter(store, HOUR, () => clock, { sessions: () => online }, silentLogger());
    return { meter: m, online, setClock: (t) => (clock = t), store };
  }

  /** Sensor-hours per period start, as reported (6 decimals). */
  const hours = (m: UsageMeter, oid: string): Record<string, number> =>
    Object.fromEntries(m.pendingOf(oid).filter((d) => d.k === 'sensor_hours').map((d) => [new Date(d.period).toISOString().slice(11, 16), reportedAmount(d)]));

  it('credits a session that ends between two samples up to its end, and a later sample does not count it again', async () => {
    const { meter: m, online, setClock } = await meter(P0);
    const a: MeteredSession = { oid: 'org-a', sid: 'sensor-1', connected_at: P0 + 10 * MIN };
    online.push(a);
    setClock(P0 + 20 * MIN);
    m.sampleOnline(); // 10 minutes so far
    expect(hours(m, 'org-a')).toEqual({ '00:00': reportedAmount({ v: 10 / 60 }) });

    // It ends at 00:35, with no sample since 00:20: 15 more minutes, up to its end.
    setClock(P0 + 35 * MIN);
    m.sessionEnded(a, P0 + 35 * MIN);
    // Still listed at the next sample (the registry lets go of it a moment later): counted once all the same.
    setClock(P0 + 50 * MIN);
    m.sampleOnline();
    online.splice(0);
    setClock(P0 + 55 * MIN);
    m.sampleOnline();
    expect(hours(m, 'org-a')).toEqual({ '00:00': reportedAmount({ v: 25 / 60 }) });
  });

  it('credits a session that starts and ends between two samples in full, split at period boundaries', async () => {
    const { meter: m, setClock, store } = await meter(P0 + 50 * MIN);
    setClock(P0 + 50 * MIN);
    m.sampleOnline();
    // Connected at 00:55, gone at 01:07, never seen by a sample: 5 minutes in 00:00-01:00, 7 in 01:00-02:00.
    m.sessionEnded({ oid: 'org-b', sid: 'sensor-2', connected_at: P0 + 55 * MIN }, P0 + 67 * MIN);
    setClock(P0 + 70 * MIN);
    m.sampleOnline();
    expect(hours(m, 'org-b')).toEqual({ '00:00': reportedAmount({ v: 5 / 60 }), '01:00': reportedAmount({ v: 7 / 60 }) });

    // What the meter holds is what the store gets.
    await m.flush();
    const stored = await store.listUsage('org-b', P0, P0 + HOUR);
    expect(stored.map((u) => [u.period, u.k, reportedAmount(u)])).toEqual([
      [P0, 'sensor_hours', reportedAmount({ v: 5 / 60 })],
      [P0 + HOUR, 'sensor_hours', reportedAmount({ v: 7 / 60 })],
    ]);
  });
});
