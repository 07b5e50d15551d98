// This node's leases (ClusterStore.openLeases: session advisory locks on a connection of their own). When
// that connection is lost every lease is gone at once: the keeper tells its listeners (they stop what the
// leases guarded) and opens a new session, retrying until PostgreSQL answers again.
import type { Logger } from '../observability/logger.js';
import type { ClusterStore, LeaseSession } from '../store/cluster-store.js';

const REOPEN_RETRY_MS = 1000;

export class LeaseKeeper {
  private session: LeaseSession | null = null;
  private opening: Promise<LeaseSession> | null = null;
  private readonly listeners: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly cluster: ClusterStore,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.current();
  }

  /** `listener` runs each time every lease was lost at once. */
  onLost(listener: () => void): void {
    this.listeners.push(listener);
  }

  async tryAcquire(name: string): Promise<boolean> {
    if (this.closed) return false;
    const session = await this.current();
    return session.tryAcquire(name);
  }

  async release(name: string): Promise<void> {
    if (this.closed || !this.session) return;
    await this.session.release(name).catch((err: unknown) => this.logger.warn({ err, lease: name }, 'could not release a lease (it goes with its connection)'));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.opening?.catch(() => undefined);
    await this.session?.close();
    this.session = null;
  }

  private current(): Promise<LeaseSession> {
    if (this.session) return Promise.resolve(this.session);
    this.opening ??= this.open().finally(() => (this.opening = null));
    return this.opening;
  }

  private async open(): Promise<LeaseSession> {
    for (;;) {
      try {
        const session = await this.cluster.openLeases();
        this.session = session;
        void session.lost.then((err) => this.onSessionLost(session, err));
        return session;
      } catch (err) {
        if (this.closed) throw err;
        this.logger.warn({ err }, 'cannot open the lease connection; retrying');
        await new Promise((r) => setTimeout(r, REOPEN_RETRY_MS));
      }
    }
  }

  private onSessionLost(session: LeaseSession, err: Error): void {
    if (this.session !== session || this.closed) return;
    this.session = null;
    this.logger.error({ err }, 'lost the lease connection: every lease of this node is gone');
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (e) {
        this.logger.error({ err: e }, 'a lease-loss listener failed');
      }
    }
  }
}
