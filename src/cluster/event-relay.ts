// The leader's relay: publishes the event log to the bus's JetStream stream, once, in log order. The log
// in PostgreSQL is commit-ordered (store/postgres/event-log.ts), so reading it after the relay's position
// never misses an event that becomes visible later. Each event is published with the message id
// `<epoch>:<seq>`; the position is moved only after JetStream acknowledged the batch, so a leader that dies
// in between leaves a batch that the next leader publishes again, and JetStream's duplicate window drops
// the repeats. The epoch (drawn once per store) keeps a recreated store from colliding with old ids.
import type { JetStreamClient, NatsConnection, Subscription } from 'nats';
import { eventHeaders, type JetStreamBusNames } from '../bus/jetstream-bus.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { Store } from '../store/store.js';

/** Events read and published per step. */
const PAGE = 2000;
/** How often an idle relay looks at the log without being woken, ms. */
const IDLE_POLL_MS = 500;
/** Retry delay after a failure (PostgreSQL or NATS unavailable), ms. */
const RETRY_MS = 1000;

export class EventRelay {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private sub: Subscription | null = null;
  private readonly js: JetStreamClient;
  /** Log position published so far (for metrics and tests). */
  position = 0;

  constructor(
    private readonly deps: {
      nc: NatsConnection;
      names: JetStreamBusNames;
      store: Store;
      cluster: ClusterStore;
      metrics: Metrics;
      logger: Logger;
    },
  ) {
    this.js = deps.nc.jetstream();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.sub = this.deps.nc.subscribe(this.deps.names.relayWake, { callback: () => this.wake() });
    this.loop = this.run();
  }

  /** Something was stored: look now. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.sub?.unsubscribe();
    this.sub = null;
    this.wake();
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    const { cluster, store, logger } = this.deps;
    let start: { seq: number; epoch: string } | null = null;
    while (this.running && start === null) {
      try {
        const relay = await cluster.relayPosition();
        if (relay.seq === null) {
          // The first cluster start on this store: what a single node stored before is not replayed.
          const last = await store.lastLogSeq();
          await cluster.setRelayPosition(last);
          start = { seq: (await cluster.relayPosition()).seq ?? last, epoch: relay.epoch };
        } else {
          start = { seq: relay.seq, epoch: relay.epoch };
        }
      } catch (err) {
        logger.warn({ err }, 'relay cannot read its position; retrying');
        await this.sleep(RETRY_MS);
      }
    }
    if (start === null) return;
    this.position = start.seq;
    logger.info({ position: this.position }, 'event relay started');
    while (this.running) {
      try {
        const published = await this.step(start.epoch);
        if (published === 0) await this.sleep(IDLE_POLL_MS);
      } catch (err) {
        this.deps.metrics.relayErrors.inc();
        logger.warn({ err, position: this.position }, 'relay step failed; retrying');
        await this.sleep(RETRY_MS);
      }
    }
  }

  /** Publishes the next page of the log; returns how many events it published. */
  private async step(epoch: string): Promise<number> {
    const { cluster, names, metrics } = this.deps;
    const rows = await cluster.readLogSince(this.position, PAGE);
    if (rows.length === 0) return 0;
    await Promise.all(
      rows.map((r) =>
        this.js.publish(names.events(r.stream ?? 'event', r.oid), Buffer.from(r.json), {
          msgID: `${epoch}:${r.seq}`,
          headers: eventHeaders({ sid: r.sid, event_type: r.event_type }, r.seq),
        }),
      ),
    );
    const last = rows[rows.length - 1]!.seq;
    await cluster.setRelayPosition(last);
    this.position = last;
    metrics.relayPublished.inc(rows.length);
    metrics.relayPosition.set(last);
    return rows.length;
  }

  private sleep(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = null;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}
