// Which node runs a job that must run exactly once in the cluster: an output's delivery, a cloud adapter.
// On one node everything runs here (LOCAL_PLACEMENT); in a cluster a job runs where its lease is held
// (src/cluster/cluster-placement.ts), and the managers re-check their jobs every `rebalanceMs`.
export interface Placement {
  /** Whether this node runs `key` from now on: takes its lease when it is free and this node should. */
  claim(key: string): Promise<boolean>;
  /** Whether this node should keep running `key`: its lease is still held and no better-placed node is up. */
  keep(key: string): boolean;
  /** Lets another node take `key` (after the job here has stopped). */
  release(key: string): Promise<void>;
  /** `listener` runs when every lease of this node was lost at once (its lease connection dropped). */
  onLost(listener: () => void): void;
  /** How often owners re-evaluate their jobs, ms; 0 on one node (nothing ever moves). */
  readonly rebalanceMs: number;
}

export const LOCAL_PLACEMENT: Placement = {
  claim: async () => true,
  keep: () => true,
  release: async () => undefined,
  onLost: () => undefined,
  rebalanceMs: 0,
};
