// Per-sensor runtime counters across the cluster: each node keeps the bytes and events of the sessions it
// holds (SensorRuntime); the leader builds the *_per_sensor ticks, so before a boundary's ticks it asks
// every other live node for its counters over NATS request/reply (msgpack) and absorbs the answers. A node
// that does not answer in time leaves its sensors' bytes_recv / eps_in at 0 for that tick, never the tick.
import { pack, unpack } from 'msgpackr';
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from '../observability/logger.js';
import type { RuntimeCounters } from '../services/sensor-runtime.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { ClusterNames } from './cluster-names.js';

const COLLECT_TIMEOUT_MS = 2000;

export interface RuntimeSource {
  local(): RuntimeCounters[];
  absorbRemote(counters: Iterable<RuntimeCounters>): void;
}

export class RuntimeExchange {
  private sub: Subscription | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly nodeId: string,
    private readonly cluster: Pick<ClusterStore, 'listNodes'>,
    private readonly logger: Logger,
  ) {}

  /** Answers the leader's collections with this node's counters. */
  serve(source: RuntimeSource): void {
    this.sub?.unsubscribe();
    this.sub = this.nc.subscribe(this.names.runtime(this.nodeId), {
      callback: (err, msg) => {
        if (err) return this.logger.warn({ err }, 'runtime subscription error');
        msg.respond(pack(source.local()));
      },
    });
  }

  /** Collects the counters of every other live node into `source`. Never rejects. */
  async collect(source: RuntimeSource): Promise<void> {
    try {
      const nodes = (await this.cluster.listNodes()).filter((n) => n.node_id !== this.nodeId);
      const answers = await Promise.all(nodes.map(async (n) => {
        try {
          const reply = await this.nc.request(this.names.runtime(n.node_id), new Uint8Array(0), { timeout: COLLECT_TIMEOUT_MS });
          return unpack(reply.data) as RuntimeCounters[];
        } catch (err) {
          this.logger.warn({ err, node: n.node_id }, 'no runtime counters from a node for this tick');
          return [];
        }
      }));
      source.absorbRemote(answers.flat());
    } catch (err) {
      this.logger.warn({ err }, 'could not collect runtime counters');
    }
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
  }
}
