// One node of a cluster (PICKET_BUS): its NATS connection and the parts that make several nodes behave
// as one cloud — the JetStream bus, cluster-wide presence and admission, node-to-node requests, leases
// for once-per-cluster jobs, membership (heartbeats) and the leader's jobs. server.ts wires these in place
// of their single-node counterparts; everything else in the node is the same code.
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import { ensureEventStream, JetStreamBus } from '../bus/jetstream-bus.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import type { SessionRegistry } from '../sources/gateway/session-registry.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { Store } from '../store/store.js';
import { ClusterAdmission } from './cluster-admission.js';
import { clusterNames, type ClusterNames } from './cluster-names.js';
import { ClusterPlacement } from './cluster-placement.js';
import { ClusterPresence } from './cluster-presence.js';
import { DeadNodeSweeper } from './dead-node-sweeper.js';
import { EventRelay } from './event-relay.js';
import { LeaseKeeper } from './lease-keeper.js';
import { Leadership, type LeaderJob } from './leadership.js';
import { NodeChannel } from './node-channel.js';
import { NodeDirectory } from './node-directory.js';
import { NodeMembership } from './node-membership.js';
import { JetStreamOutputQueues } from './output-consumers.js';
import { RuntimeExchange } from './runtime-exchange.js';
import { WebhookForwarding } from './webhook-forwarding.js';

/** JetStream drops a message id published twice within this window (the relay's handover), ms. */
const DUPLICATE_WINDOW_MS = 5 * 60_000;
/** How often outputs re-check where they run, ms. */
const REBALANCE_MS = 2000;

export interface ClusterNodeOptions {
  busUrl: string;
  nodeId: string | undefined;
  /** The PostgreSQL schema the cluster runs on (names its NATS subjects and stream). */
  schema: string | undefined;
  store: Store;
  cluster: ClusterStore;
  registry: SessionRegistry;
  nodeTimeoutMs: number;
  busRetentionMs: number;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
}

export class ClusterNode {
  readonly bus: JetStreamBus;
  readonly presence: ClusterPresence;
  readonly admission: ClusterAdmission;
  readonly placement: ClusterPlacement;
  readonly webhooks: WebhookForwarding;
  /** Per-sensor runtime counters shared with the leader for *_per_sensor ticks. */
  readonly runtime: RuntimeExchange;
  /** Each output's durable JetStream consumer. */
  readonly outputQueues: JetStreamOutputQueues;
  private readonly channel: NodeChannel;
  private readonly leases: LeaseKeeper;
  private readonly directory: NodeDirectory;
  private readonly membership: NodeMembership;
  private readonly relay: EventRelay;
  private leadership: Leadership | null = null;

  private constructor(
    readonly nodeId: string,
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
    private readonly options: ClusterNodeOptions,
  ) {
    const { cluster, registry, logger, metrics, store } = options;
    this.channel = new NodeChannel(nc, names, nodeId, registry, logger.child({ component: 'node_channel' }));
    this.presence = new ClusterPresence({ nc, names, cluster, local: registry, channel: this.channel, logger: logger.child({ component: 'presence' }) });
    this.admission = new ClusterAdmission({ cluster, local: registry, presence: this.presence, channel: this.channel, logger: logger.child({ component: 'admission' }) });
    this.leases = new LeaseKeeper(cluster, logger.child({ component: 'leases' }));
    this.directory = new NodeDirectory(nodeId);
    this.placement = new ClusterPlacement(this.leases, this.directory, REBALANCE_MS);
    this.membership = new NodeMembership({ cluster, directory: this.directory, registry, timeoutMs: options.nodeTimeoutMs, logger: logger.child({ component: 'membership' }) });
    this.relay = new EventRelay({ nc, names, store, cluster, metrics, logger: logger.child({ component: 'relay' }) });
    this.webhooks = new WebhookForwarding(nc, names, logger.child({ component: 'webhooks' }));
    this.runtime = new RuntimeExchange(nc, names, nodeId, cluster, logger.child({ component: 'runtime' }));
    this.outputQueues = new JetStreamOutputQueues({ nc, names, store, logger: logger.child({ component: 'output_consumers' }) });
    this.bus = new JetStreamBus(nc, names, logger.child({ component: 'bus' }), () => this.relay.wake());
  }

  /** Connects to NATS, makes sure the event stream exists, and opens the lease connection. */
  static async connect(options: ClusterNodeOptions): Promise<ClusterNode> {
    const nodeId = options.nodeId ?? `node-${randomBytes(4).toString('hex')}`;
    const names = clusterNames(options.schema);
    const nc = await connect({ servers: options.busUrl.split(',').map((s) => s.trim()), name: `picket-${nodeId}`, maxReconnectAttempts: -1 });
    try {
      await ensureEventStream(await nc.jetstreamManager(), names, { maxAgeMs: options.busRetentionMs, duplicateWindowMs: DUPLICATE_WINDOW_MS });
      const node = new ClusterNode(nodeId, nc, names, options);
      await node.leases.start();
      await node.bus.start();
      return node;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  get isLeader(): boolean {
    return this.leadership?.isLeader ?? false;
  }

  /** Whether NATS is connected (readiness). */
  get connected(): boolean {
    return !this.nc.isClosed() && this.nc.info !== undefined;
  }

  /**
   * Once the node listens at `url`: starts answering other nodes, joins the membership and starts trying
   * for leadership, with `jobs` (besides the relay and the dead-node sweep) run while it leads.
   */
  async join(url: string, jobs: ReadonlyArray<LeaderJob>, submit: (events: PipelineEvent[]) => Promise<unknown>): Promise<void> {
    const { store, cluster, metrics, logger, now, nodeTimeoutMs } = this.options;
    this.channel.start();
    await this.presence.start();
    await this.membership.join(url);
    const sweeper = new DeadNodeSweeper({ store, cluster, presence: this.presence, submit, timeoutMs: nodeTimeoutMs, selfId: this.nodeId, now, metrics, logger: logger.child({ component: 'dead_nodes' }) });
    const relayJob: LeaderJob = { name: 'event relay', start: () => this.relay.start(), stop: () => this.relay.stop() };
    this.leadership = new Leadership({ leases: this.leases, jobs: [relayJob, sweeper, ...jobs], metrics, logger: logger.child({ component: 'leadership' }), nodeId: this.nodeId });
    await this.leadership.start();
    logger.info({ node: this.nodeId, leader: this.isLeader }, 'joined the cluster');
  }

  /** Before the sessions close: stop answering for them as a node and stop leading. */
  async stopLeading(): Promise<void> {
    await this.leadership?.stop();
  }

  /** After the node's sessions closed and its writer drained. */
  async leave(): Promise<void> {
    await this.membership.leave();
    await this.presence.stop();
    this.runtime.stop();
    await this.channel.stop();
    await this.options.cluster.removeNode(this.nodeId).catch((err: unknown) => this.options.logger.warn({ err }, 'could not remove this node from the cluster'));
    await this.leases.close();
  }

  /** After the bus closed. */
  async disconnect(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}
