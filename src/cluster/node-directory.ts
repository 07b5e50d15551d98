// The live nodes of the cluster as this node last read them from cluster_nodes (refreshed by the
// membership heartbeat), and the preferred order of nodes for a job: rendezvous hashing, so each job has
// one preferred node and only the jobs of a node that leaves or joins move.
import { createHash } from 'node:crypto';
import type { ClusterNodeRow } from '../store/cluster-store.js';

export class NodeDirectory {
  private live: string[] = [];

  constructor(readonly nodeId: string) {
    this.live = [nodeId];
  }

  /** The nodes whose last heartbeat is younger than `timeoutMs`. */
  update(rows: ReadonlyArray<ClusterNodeRow>, timeoutMs: number): void {
    const ids = rows.filter((r) => Number(r.age_ms) <= timeoutMs).map((r) => r.node_id);
    if (!ids.includes(this.nodeId)) ids.push(this.nodeId);
    this.live = ids.sort();
  }

  nodes(): ReadonlyArray<string> {
    return this.live;
  }

  /** This node's place in the job's preference order among live nodes (0: preferred). */
  rankOf(key: string): number {
    const score = (node: string): string => createHash('sha256').update(`${node}\n${key}`).digest('hex');
    const order = [...this.live].sort((a, b) => (score(a) < score(b) ? 1 : score(a) > score(b) ? -1 : 0));
    return order.indexOf(this.nodeId);
  }
}
