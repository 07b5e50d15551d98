// Emits the schedule ticks (platform-reference.md §5) at wall-clock (UTC) period boundaries: each
// frequency once per period. The last period emitted per frequency is kept in the store and claimed
// before the tick is published, so a restart inside a period does not repeat it, a restart after a
// boundary emits that period late (once), and a long downtime emits only the current period, no burst.
// On the very first start the current periods are recorded without emitting: the first ticks come at the
// next boundaries. Eligibility: an organization with a sensor online in the last 7 days, a sensor online
// at least once in the last 30 days ("online" = a live session now, or a last-seen time in the window).
import type { EventBus, BusEvent } from '../../bus/event-bus.js';
import { SCHEDULE_FREQUENCIES, type ScheduleFrequency } from '../../catalogue/index.js';
import type { SensorRecord } from '../../domain/records.js';
import type { Logger } from '../../observability/logger.js';
import type { CloudAdapterDirectory } from '../../services/cloud-adapter-directory.js';
import { periodStart } from '../../services/periods.js';
import type { FleetPresence } from '../../services/presence.js';
import type { SensorRuntime } from '../../services/sensor-runtime.js';
import type { Store } from '../../store/store.js';
import { perCloudAdapterEvent, perOrgEvent, perSensorEvent } from './schedule-ticks.js';

const DAY_MS = 86_400_000;
export const ORG_ELIGIBLE_MS = 7 * DAY_MS;
export const SENSOR_ELIGIBLE_MS = 30 * DAY_MS;
/** How often the clock is looked at: a tick is published at most this late after its boundary. */
const CHECK_MS = 1000;

export interface ScheduleTickerDeps {
  store: Store;
  bus: EventBus;
  presence: FleetPresence;
  runtime: SensorRuntime;
  adapters: CloudAdapterDirectory;
  now: () => number;
  logger: Logger;
  /** Runs before the ticks of a boundary are built (a cluster's leader collects other nodes' runtime counters). */
  beforeTick?: () => Promise<void>;
}

export class ScheduleTicker {
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ScheduleTickerDeps) {}

  start(): void {
    if (this.timer) return;
    // The first check comes one interval after start, so that everything a node wires at start sees it.
    this.timer = setInterval(() => void this.tick(), CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain;
  }

  /** Emits the frequencies whose period began since they last fired; runs one at a time. Never rejects. */
  tick(): Promise<void> {
    this.chain = this.chain.then(() => this.run()).catch((err: unknown) => this.deps.logger.error({ err }, 'schedule tick failed; retrying on the next check'));
    return this.chain;
  }

  private async run(): Promise<void> {
    const { store, now } = this.deps;
    const at = now();
    const marks = await store.getScheduleMarks();
    const due: ScheduleFrequency[] = [];
    for (const [freq, seconds] of Object.entries(SCHEDULE_FREQUENCIES) as Array<[ScheduleFrequency, number]>) {
      const period = periodStart(at, seconds * 1000);
      const last = marks[freq];
      if (last !== undefined && period <= last) continue;
      // Claimed before publishing: at most once per period even if this node dies right after.
      if ((await store.claimSchedulePeriod(freq, period)) && last !== undefined) due.push(freq);
    }
    if (due.length === 0) return;
    await this.deps.beforeTick?.();
    const events = await this.ticks(due, at);
    this.deps.runtime.prune();
    this.deps.bus.publishTransient(events);
    this.deps.logger.debug({ frequencies: due, events: events.length }, 'schedule ticks published');
  }

  private async ticks(due: ScheduleFrequency[], at: number): Promise<BusEvent[]> {
    const { store, presence, runtime, adapters } = this.deps;
    const byOrg = new Map<string, Map<string, SensorRecord>>();
    const ofOrg = (oid: string): Map<string, SensorRecord> => {
      let m = byOrg.get(oid);
      if (!m) byOrg.set(oid, (m = new Map()));
      return m;
    };
    for (const s of await store.listSensorsSeenSince(at - SENSOR_ELIGIBLE_MS)) ofOrg(s.oid).set(s.sid, s);
    const events: BusEvent[] = [];
    for (const org of await store.listOrgs()) {
      const mine = ofOrg(org.oid);
      // Online now counts as seen now, whatever the last flushed last-seen time says.
      for (const sid of presence.onlineSids(org.oid)) {
        if (mine.has(sid)) continue;
        const s = await store.getSensor(sid);
        if (s && s.deleted === null && s.oid === org.oid) mine.set(sid, s);
      }
      const own = [...mine.values()];
      const orgEligible = own.some((s) => presence.isOnline(s.sid) || (s.alive ?? 0) >= at - ORG_ELIGIBLE_MS);
      const orgAdapters = await adapters.list(org.oid);
      for (const freq of due) {
        if (orgEligible) events.push(perOrgEvent(freq, org.oid, at));
        for (const s of own) events.push(perSensorEvent(freq, s, runtime.metrics(s.sid, at), at));
        for (const a of orgAdapters) events.push(perCloudAdapterEvent(freq, org.oid, a, at));
      }
    }
    return events;
  }
}
