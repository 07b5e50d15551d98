// The cluster's single leader: whoever holds the "leader" lease runs the jobs that must run once in the
// cluster (the event relay, schedule ticks, closing billing periods, sweeping dead nodes). Every node
// tries for the lease each second; when the leader dies its lease connection closes with it and the next
// node to try takes over. A leader that loses its lease connection stops its jobs at once.
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { LeaseKeeper } from './lease-keeper.js';

export interface LeaderJob {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): Promise<void>;
}

export const LEADER_LEASE = 'leader';
const TRY_EVERY_MS = 1000;

export class Leadership {
  private leading = false;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly deps: { leases: LeaseKeeper; jobs: ReadonlyArray<LeaderJob>; metrics: Metrics; logger: Logger; nodeId: string },
  ) {
    deps.leases.onLost(() => {
      this.chain = this.chain.then(() => this.abdicate('lease connection lost'));
    });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): Promise<void> {
    this.timer = setInterval(() => {
      this.chain = this.chain.then(() => this.attempt());
    }, TRY_EVERY_MS);
    this.timer.unref();
    this.chain = this.chain.then(() => this.attempt());
    return this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain;
    await this.abdicate('shutting down');
  }

  private async attempt(): Promise<void> {
    if (this.leading || this.stopped) return;
    let won: boolean;
    try {
      won = await this.deps.leases.tryAcquire(LEADER_LEASE);
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not try for the leader lease');
      return;
    }
    if (!won || this.stopped) return;
    this.leading = true;
    this.deps.metrics.clusterLeader.set(1);
    this.deps.logger.info({ node: this.deps.nodeId }, 'this node is the cluster leader');
    for (const job of this.deps.jobs) {
      try {
        await job.start();
      } catch (err) {
        this.deps.logger.error({ err, job: job.name }, 'a leader job did not start');
      }
    }
  }

  private async abdicate(why: string): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    this.deps.metrics.clusterLeader.set(0);
    this.deps.logger.warn({ node: this.deps.nodeId, why }, 'this node is no longer the cluster leader');
    for (const job of [...this.deps.jobs].reverse()) {
      await job.stop().catch((err: unknown) => this.deps.logger.error({ err, job: job.name }, 'a leader job did not stop cleanly'));
    }
    await this.deps.leases.release(LEADER_LEASE);
  }
}
