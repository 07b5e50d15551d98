// This node's place in cluster_nodes: registered with its API URL once it listens, then a heartbeat every
// third of the node timeout, which also refreshes the directory of live nodes. A heartbeat that finds the
// row gone means the leader declared this node dead (a long pause, a network cut) and already closed its
// sessions on its behalf: the node closes its local sessions too (the sensors reconnect and are admitted
// afresh) and registers again.
import type { Logger } from '../observability/logger.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { SessionRegistry } from '../sources/gateway/session-registry.js';
import type { ClusterStore } from '../store/cluster-store.js';
import type { NodeDirectory } from './node-directory.js';

export class NodeMembership {
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  private url = '';

  constructor(
    private readonly deps: {
      cluster: ClusterStore;
      directory: NodeDirectory;
      registry: SessionRegistry;
      timeoutMs: number;
      logger: Logger;
    },
  ) {}

  get nodeId(): string {
    return this.deps.directory.nodeId;
  }

  async join(url: string): Promise<void> {
    this.url = url;
    await this.deps.cluster.registerNode(this.nodeId, url);
    await this.refresh();
    const every = Math.max(200, Math.floor(this.deps.timeoutMs / 3));
    this.timer = setInterval(() => {
      this.beating = this.beating.then(() => this.beat()).catch((err: unknown) => this.deps.logger.warn({ err }, 'cluster heartbeat failed'));
    }, every);
    this.timer.unref();
  }

  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
  }

  private async beat(): Promise<void> {
    const { cluster, registry, logger } = this.deps;
    if (!(await cluster.heartbeat(this.nodeId))) {
      logger.error({ node: this.nodeId }, 'this node was declared dead by the cluster; closing its sessions and joining again');
      for (const session of [...registry.all()]) session.close(CloseCode.serviceRestart, 'node rejoining the cluster');
      await cluster.registerNode(this.nodeId, this.url);
    }
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    this.deps.directory.update(await this.deps.cluster.listNodes(), this.deps.timeoutMs);
  }
}
