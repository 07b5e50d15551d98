// Closes billing periods (docs/schedule-and-billing.md): on a timer it samples sensor-hours and flushes
// the usage meter; once a period is over (and at shutdown) it samples artifact bytes stored, then stores the period's
// billing_record events and marks the period closed in one transaction (so a restart never emits a period
// twice and closes the periods a stop left open), and publishes them on the bus.
import type { BusEvent, EventBus } from '../../bus/event-bus.js';
import type { Logger } from '../../observability/logger.js';
import type { ArtifactUsage } from '../../services/artifact-usage.js';
import { periodStart } from '../../services/periods.js';
import { USAGE, type UsageMeter } from '../../services/usage-meter.js';
import type { Store } from '../../store/store.js';
import { billingRecordEvents } from './billing-records.js';

export interface BillingEmitterDeps {
  store: Store;
  bus: EventBus;
  meter: UsageMeter;
  artifacts: ArtifactUsage;
  now: () => number;
  logger: Logger;
  /** How often the meter is flushed and due periods closed, ms. */
  intervalMs: number;
  /** Whether this node closes ended periods (in a cluster only the leader does); every node flushes. Default: yes. */
  closesPeriods?: () => boolean;
  /** How long after its end a period is closed, ms: the other nodes' last flush of it must be in by then. Default 0. */
  closeGraceMs?: number;
}

export class BillingEmitter {
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** The period the previous tick ran in: crossing its end samples the gauges for it. */
  private lastPeriod: number;

  constructor(private readonly deps: BillingEmitterDeps) {
    this.lastPeriod = periodStart(deps.now(), deps.meter.periodMs);
  }

  start(): void {
    if (this.timer) return;
    // The first tick (which also closes periods a previous run left open) comes one interval after start.
    this.timer = setInterval(() => void this.tick(), this.deps.intervalMs);
    this.timer.unref();
  }

  /** Samples, flushes and closes every period that is over; runs one at a time. Never rejects. */
  tick(): Promise<void> {
    this.chain = this.chain.then(() => this.run()).catch((err: unknown) => this.deps.logger.error({ err }, 'billing tick failed; retrying on the next one'));
    return this.chain;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain;
    this.deps.meter.sampleOnline();
    // The period under way may end while this node is down: it keeps the artifact bytes stored now.
    await this.sampleGauges(periodStart(this.deps.now(), this.deps.meter.periodMs)).catch((err: unknown) => this.deps.logger.error({ err }, 'could not sample artifact bytes at shutdown'));
    await this.deps.meter.flush().catch((err: unknown) => this.deps.logger.error({ err }, 'could not persist usage counters at shutdown'));
  }

  /** Artifact bytes stored now, as the value of `period` (a gauge: the latest sample wins). */
  private async sampleGauges(period: number): Promise<void> {
    for (const org of await this.deps.store.listOrgs()) {
      const bytes = await this.deps.artifacts.bytesStored(org.oid);
      if (bytes > 0) this.deps.meter.set(org.oid, period, USAGE.artifact, USAGE.bytesStored, bytes);
    }
  }

  private async run(): Promise<void> {
    const { meter, store, now } = this.deps;
    meter.sampleOnline();
    const current = periodStart(now(), meter.periodMs);
    if (current > this.lastPeriod) {
      await this.sampleGauges(this.lastPeriod);
      this.lastPeriod = current;
    }
    await meter.flush();
    if (this.deps.closesPeriods && !this.deps.closesPeriods()) return;
    const closeBefore = periodStart(now() - (this.deps.closeGraceMs ?? 0), meter.periodMs);
    for (const period of await store.unclosedUsagePeriods(closeBefore)) {
      const events = billingRecordEvents(period, await store.usageOfPeriod(period), now());
      if (!(await store.closeUsagePeriod(period, events, now()))) continue;
      this.deps.logger.info({ period: new Date(period).toISOString(), records: events.length }, 'billing period closed');
      this.deps.bus.publish(events.map((e): BusEvent => ({ stream: 'billing', oid: e.oid, sid: null, event_type: e.event_type, json: e.json })));
    }
  }
}
