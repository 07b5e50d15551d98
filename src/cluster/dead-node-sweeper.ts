// The leader's sweep of dead nodes: a node whose heartbeat is older than the node timeout is removed with
// its session rows, and each of its sensors that has not come back elsewhere gets its DISCONNECTED
// (reason node_lost) written here, on the dead node's behalf. A sensor that reconnected to another node
// first replaced its row there (ClusterStore.admitSession), and that node wrote the DISCONNECTED. The
// event is stamped with the dead node's last heartbeat: when the session was last known to be alive.
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RoutingTemplate } from '../pipeline/envelope.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import { disconnectedEvent } from '../sources/platform/lifecycle-events.js';
import type { ClusterSessionRow, ClusterStore } from '../store/cluster-store.js';
import type { Store } from '../store/store.js';
import type { ClusterPresence } from './cluster-presence.js';
import type { LeaderJob } from './leadership.js';

const SWEEP_EVERY_MS = 1000;

export const NODE_LOST_REASON = 'node_lost: the node holding the session stopped answering';

export class DeadNodeSweeper implements LeaderJob {
  readonly name = 'dead-node sweeper';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: {
      store: Store;
      cluster: ClusterStore;
      presence: ClusterPresence;
      submit: (events: PipelineEvent[]) => Promise<unknown>;
      timeoutMs: number;
      selfId: string;
      now: () => number;
      metrics: Metrics;
      logger: Logger;
    },
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running = this.running.then(async () => void (await this.sweep())).catch((err: unknown) => this.deps.logger.warn({ err }, 'dead-node sweep failed'));
    }, SWEEP_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep now: returns the nodes removed. */
  async sweep(): Promise<string[]> {
    const { cluster, logger, metrics } = this.deps;
    const dead = (await cluster.deadNodes(this.deps.timeoutMs)).filter((n) => n !== this.deps.selfId);
    if (dead.length === 0) return dead;
    // The sessions ended when their node last showed life (its last heartbeat), not when this sweep ran: a
    // sensor that came back elsewhere meanwhile has its new CONNECTED after this DISCONNECTED.
    const ages = new Map((await cluster.listNodes()).map((n) => [n.node_id, Number(n.age_ms)]));
    for (const node of dead) {
      const endedAt = this.deps.now() - (ages.get(node) ?? this.deps.timeoutMs);
      const sessions = await cluster.removeNode(node);
      metrics.clusterNodesLost.inc();
      logger.warn({ node, sessions: sessions.length }, 'cluster node is dead; closing its sessions on its behalf');
      const events: PipelineEvent[] = [];
      for (const row of sessions) {
        this.deps.presence.announceDown(row);
        const event = await this.disconnected(row, endedAt);
        if (event) events.push(event);
      }
      if (events.length > 0) await this.deps.submit(events);
    }
    return dead;
  }

  private async disconnected(row: ClusterSessionRow, at: number): Promise<PipelineEvent | null> {
    const sensor = await this.deps.store.getSensor(row.sid);
    if (!sensor) return null;
    const template = new RoutingTemplate({
      oid: sensor.oid, iid: sensor.iid, sid: sensor.sid, did: sensor.did, plat: sensor.plat, arch: sensor.arch,
      hostname: row.hostname, ext_ip: row.ext_ip, int_ip: sensor.int_ip, tags: sensor.tags,
    });
    return disconnectedEvent(template, NODE_LOST_REASON, Math.max(at, row.connected_at));
  }
}
