// GET /v1/usage/{oid}: an organization's usage per billing period, the same numbers billing_record
// carries. Past periods come from the store; the current one adds what the meter has not flushed yet,
// the sensor-hours up to now and the artifact bytes stored right now.
import type { UsageAmount } from '../domain/usage.js';
import type { Store } from '../store/store.js';
import type { ArtifactUsage } from './artifact-usage.js';
import { periodStart, sqlDateTime } from './periods.js';
import { reportedAmount, USAGE, type UsageMeter } from './usage-meter.js';

export interface UsagePeriod {
  /** Start of the period, Unix seconds. */
  start: number;
  /** Start of the period as billing_record's ts writes it (UTC). */
  ts: string;
  /** The period under way (its numbers still grow). */
  current: boolean;
  usage: Array<{ cat: string; k: string; v: number }>;
}

export interface UsageReport {
  readonly periodMs: number;
  /** Periods overlapping [fromMs, toMs] that have any usage, oldest first. */
  report(oid: string, fromMs: number, toMs: number): Promise<UsagePeriod[]>;
}

export class MeteredUsageReport implements UsageReport {
  constructor(
    private readonly store: Store,
    private readonly meter: UsageMeter,
    private readonly artifacts: ArtifactUsage,
    private readonly now: () => number,
  ) {}

  get periodMs(): number {
    return this.meter.periodMs;
  }

  async report(oid: string, fromMs: number, toMs: number): Promise<UsagePeriod[]> {
    const len = this.meter.periodMs;
    const current = periodStart(this.now(), len);
    const from = periodStart(fromMs, len);
    const to = periodStart(toMs, len);
    this.meter.sampleOnline();
    const amounts: UsageAmount[] = await this.store.listUsage(oid, from, to);
    const byKey = new Map<string, UsageAmount>();
    for (const a of amounts) byKey.set(`${a.period}\u0000${a.cat}\u0000${a.k}`, { ...a });
    for (const d of this.meter.pendingOf(oid)) {
      if (d.period < from || d.period > to) continue;
      const id = `${d.period}\u0000${d.cat}\u0000${d.k}`;
      const a = byKey.get(id);
      if (a && d.mode === 'add') a.v += d.v;
      else byKey.set(id, { oid, period: d.period, cat: d.cat, k: d.k, v: d.v });
    }
    if (current >= from && current <= to) {
      const stored = await this.artifacts.bytesStored(oid);
      if (stored > 0) byKey.set(`${current}\u0000${USAGE.artifact}\u0000${USAGE.bytesStored}`, { oid, period: current, cat: USAGE.artifact, k: USAGE.bytesStored, v: stored });
    }
    const periods = new Map<number, UsagePeriod>();
    const sorted = [...byKey.values()].sort((a, b) => a.period - b.period || a.cat.localeCompare(b.cat) || a.k.localeCompare(b.k));
    for (const a of sorted) {
      let p = periods.get(a.period);
      if (!p) periods.set(a.period, (p = { start: a.period / 1000, ts: sqlDateTime(a.period), current: a.period === current, usage: [] }));
      p.usage.push({ cat: a.cat, k: a.k, v: reportedAmount(a) });
    }
    return [...periods.values()];
  }
}
