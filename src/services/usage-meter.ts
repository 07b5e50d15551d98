// Meters each organization's usage per billing period (docs/schedule-and-billing.md): events and bytes
// received per platform, bytes sent per output, sensor-hours online. Counting is in memory (one map
// update per batch, never a write per event); flush() adds the deltas to the store's counters in one
// transaction, so a restart loses nothing flushed and counts nothing twice.
import { platformName } from '../domain/platform.js';
import type { UsageAmount, UsageDelta } from '../domain/usage.js';
import type { Logger } from '../observability/logger.js';
import type { SensorRouting } from '../pipeline/envelope.js';
import type { Store } from '../store/store.js';
import { periodStart } from './periods.js';
import type { ReceivedUsage } from './sensor-runtime.js';

/** Billing categories and keys (billing_record cat/k). */
export const USAGE = {
  sensor: 'sensor',
  output: 'output',
  artifact: 'artifact',
  eventsRecv: 'events_recv',
  bytesRecv: 'bytes_recv',
  bytesTx: 'bytes_tx',
  sensorHours: 'sensor_hours',
  bytesStored: 'bytes_stored',
} as const;

/** What an output worker reports after each delivery. */
export interface OutputUsage {
  sent(oid: string, output: string, bytes: number): void;
}

/** A session as metered for sensor-hours. */
export interface MeteredSession {
  oid: string;
  sid: string;
  connected_at: number;
}

/** The live sessions, for sensor-hours (SessionRegistry.all()). */
export interface OnlineSessions {
  sessions(): Iterable<MeteredSession>;
}

const HOUR_MS = 3_600_000;

export class UsageMeter implements ReceivedUsage, OutputUsage {
  private pending = new Map<string, UsageDelta>();
  private lastSampleAt: number;
  /** Sessions credited up to their end since the last sample: not counted again should one still be listed. */
  private ended = new Set<string>();
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    readonly periodMs: number,
    private readonly now: () => number,
    private readonly online: OnlineSessions,
    private readonly logger: Logger,
  ) {
    this.lastSampleAt = now();
  }

  received(routing: SensorRouting, events: number, bytes: number): void {
    const period = periodStart(this.now(), this.periodMs);
    const plat = platformName(routing.plat);
    this.add(routing.oid, period, USAGE.sensor, USAGE.eventsRecv, events);
    this.add(routing.oid, period, USAGE.sensor, USAGE.bytesRecv, bytes);
    this.add(routing.oid, period, USAGE.sensor, `${plat}:${USAGE.eventsRecv}`, events);
    this.add(routing.oid, period, USAGE.sensor, `${plat}:${USAGE.bytesRecv}`, bytes);
  }

  sent(oid: string, output: string, bytes: number): void {
    if (bytes <= 0) return;
    const period = periodStart(this.now(), this.periodMs);
    this.add(oid, period, USAGE.output, USAGE.bytesTx, bytes);
    this.add(oid, period, USAGE.output, `${output}:${USAGE.bytesTx}`, bytes);
  }

  /** A gauge for a period (artifact bytes stored): replaces the stored value. */
  set(oid: string, period: number, cat: string, k: string, v: number): void {
    this.pending.set(key(oid, period, cat, k), { oid, period, cat, k, v, mode: 'set' });
  }

  /**
   * Adds the time each live session was online since the last sample, split at period boundaries. A
   * session that ended since the last sample was credited up to its end by sessionEnded().
   */
  sampleOnline(): void {
    const now = this.now();
    const since = this.lastSampleAt;
    const ended = this.ended;
    this.lastSampleAt = now;
    this.ended = new Set();
    if (now <= since) return;
    for (const s of this.online.sessions()) {
      if (!ended.has(sessionKey(s))) this.credit(s, Math.max(since, s.connected_at), now);
    }
  }

  /**
   * A session ended at `at` (Unix ms): its time online since the last sample (or since it connected, when
   * later) is credited now, so that sensor-hours run up to the end of every session, however short.
   */
  sessionEnded(session: MeteredSession, at: number): void {
    this.ended.add(sessionKey(session));
    this.credit(session, Math.max(this.lastSampleAt, session.connected_at), at);
  }

  /** Adds the sensor-hours of one session from `from` to `to`, split at period boundaries. */
  private credit(s: MeteredSession, from: number, to: number): void {
    while (from < to) {
      const period = periodStart(from, this.periodMs);
      const end = Math.min(to, period + this.periodMs);
      this.add(s.oid, period, USAGE.sensor, USAGE.sensorHours, (end - from) / HOUR_MS);
      from = end;
    }
  }

  /** Counts not flushed yet for one organization (the API adds them to the stored ones). */
  pendingOf(oid: string): UsageDelta[] {
    return [...this.pending.values()].filter((d) => d.oid === oid).map((d) => ({ ...d }));
  }

  /** Writes the pending deltas in one transaction; on failure they are kept for the next flush. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.store.addUsage(batch).then(
      () => undefined,
      (err: unknown) => {
        this.logger.warn({ err, counters: batch.length }, 'could not persist usage counters; will retry');
        for (const d of batch) {
          if (d.mode === 'set') {
            if (!this.pending.has(key(d.oid, d.period, d.cat, d.k))) this.pending.set(key(d.oid, d.period, d.cat, d.k), d);
          } else this.add(d.oid, d.period, d.cat, d.k, d.v);
        }
        throw err;
      },
    );
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  private add(oid: string, period: number, cat: string, k: string, v: number): void {
    if (v === 0) return;
    const id = key(oid, period, cat, k);
    const d = this.pending.get(id);
    if (d) d.v += v;
    else this.pending.set(id, { oid, period, cat, k, v, mode: 'add' });
  }
}

function sessionKey(s: MeteredSession): string {
  return `${s.sid}\u0000${s.connected_at}`;
}

function key(oid: string, period: number, cat: string, k: string): string {
  return `${oid}\u0000${period}\u0000${cat}\u0000${k}`;
}

/** Rounds an amount for reporting: counts stay integers, sensor-hours keep 6 decimals. */
export function reportedAmount(a: Pick<UsageAmount, 'v'>): number {
  return Math.round(a.v * 1e6) / 1e6;
}
