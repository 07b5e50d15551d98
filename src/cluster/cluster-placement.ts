// Placement of once-per-cluster jobs (outputs' delivery) on cluster nodes: a job runs where its lease is
// held. Its preferred node (rendezvous hashing over the live nodes) claims it at once; the others wait
// their rank's share of delay before taking a job nobody claimed, so a dead node's jobs move to the next
// node in their order within a few rebalance rounds and the jobs spread over the nodes.
import type { Placement } from '../services/placement.js';
import type { LeaseKeeper } from './lease-keeper.js';
import type { NodeDirectory } from './node-directory.js';

export class ClusterPlacement implements Placement {
  private readonly held = new Set<string>();
  /** When this node first saw each job unclaimed (it was not its preferred node), ms. */
  private readonly waitingSince = new Map<string, number>();

  constructor(
    private readonly leases: LeaseKeeper,
    private readonly directory: NodeDirectory,
    readonly rebalanceMs: number,
    private readonly now: () => number = Date.now,
  ) {
    leases.onLost(() => this.held.clear());
  }

  async claim(key: string): Promise<boolean> {
    if (this.held.has(key)) return true;
    const rank = this.directory.rankOf(key);
    if (rank > 0) {
      const since = this.waitingSince.get(key) ?? this.now();
      this.waitingSince.set(key, since);
      // The preferred node normally claims within a round; each later rank waits one more round.
      if (this.now() - since < rank * this.rebalanceMs) return false;
    }
    const ok = await this.leases.tryAcquire(key);
    if (ok) {
      this.held.add(key);
      this.waitingSince.delete(key);
    }
    return ok;
  }

  keep(key: string): boolean {
    return this.held.has(key);
  }

  async release(key: string): Promise<void> {
    this.waitingSince.delete(key);
    if (!this.held.delete(key)) return;
    await this.leases.release(key);
  }

  onLost(listener: () => void): void {
    this.leases.onLost(listener);
  }
}
