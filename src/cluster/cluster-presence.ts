// Who is online across the cluster, and actions on sessions wherever they are (FleetPresence).
//
// Reads are synchronous, from what this node knows: its own session registry, plus the other nodes'
// sessions as they broadcast them going up and down (core NATS) and as re-read from cluster_sessions
// every RESYNC_MS (which repairs a missed broadcast). checkOnline() asks PostgreSQL. Actions on a session
// held by another node go to that node over NATS request/reply (node-channel.ts).
import type { NatsConnection, Subscription } from 'nats';
import type { TagState } from '../domain/records.js';
import type { Logger } from '../observability/logger.js';
import type { RoutingTemplate } from '../pipeline/envelope.js';
import type { TaskMessage } from '../protocol/messages.js';
import type { FleetPresence, LiveSessionInfo } from '../services/presence.js';
import type { SessionRegistry } from '../sources/gateway/session-registry.js';
import type { ClusterSessionRow, ClusterStore } from '../store/cluster-store.js';
import type { ClusterNames } from './cluster-names.js';
import type { NodeChannel } from './node-channel.js';

type PresenceNotice = { op: 'up'; session: ClusterSessionRow } | { op: 'down'; sid: string; session_id: string; node_id: string };

const RESYNC_MS = 5000;

export class ClusterPresence implements FleetPresence {
  /** Sessions held by other nodes, by sid. */
  private readonly remote = new Map<string, ClusterSessionRow>();
  private readonly remoteByOrg = new Map<string, Set<string>>();
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: {
      nc: NatsConnection;
      names: ClusterNames;
      cluster: ClusterStore;
      local: SessionRegistry;
      channel: NodeChannel;
      logger: Logger;
    },
  ) {}

  private get nodeId(): string {
    return this.deps.channel.nodeId;
  }

  async start(): Promise<void> {
    this.sub = this.deps.nc.subscribe(this.deps.names.presence, {
      callback: (err, msg) => {
        if (err) return this.deps.logger.warn({ err }, 'presence subscription error');
        try {
          this.apply(JSON.parse(Buffer.from(msg.data).toString('utf8')) as PresenceNotice);
        } catch (e) {
          this.deps.logger.warn({ err: e }, 'bad presence notice');
        }
      },
    });
    await this.resync();
    this.timer = setInterval(() => void this.resync(), RESYNC_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sub?.unsubscribe();
    this.sub = null;
  }

  /** Tells the other nodes that a session came up here (or elsewhere, on a dead node's behalf). */
  announceUp(session: ClusterSessionRow): void {
    this.publish({ op: 'up', session });
  }

  announceDown(row: Pick<ClusterSessionRow, 'sid' | 'session_id' | 'node_id'>): void {
    this.forget(row.sid, row.session_id);
    this.publish({ op: 'down', sid: row.sid, session_id: row.session_id, node_id: row.node_id });
  }

  private publish(notice: PresenceNotice): void {
    try {
      this.deps.nc.publish(this.deps.names.presence, Buffer.from(JSON.stringify(notice)));
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not broadcast a presence notice (the resync repairs it)');
    }
  }

  private apply(notice: PresenceNotice): void {
    if (notice.op === 'up') {
      if (notice.session.node_id === this.nodeId) return;
      this.remember(notice.session);
    } else {
      this.forget(notice.sid, notice.session_id);
    }
  }

  private remember(row: ClusterSessionRow): void {
    const previous = this.remote.get(row.sid);
    if (previous) this.remoteByOrg.get(previous.oid)?.delete(row.sid);
    this.remote.set(row.sid, row);
    let set = this.remoteByOrg.get(row.oid);
    if (!set) this.remoteByOrg.set(row.oid, (set = new Set()));
    set.add(row.sid);
  }

  private forget(sid: string, sessionId: string): void {
    const row = this.remote.get(sid);
    if (!row || row.session_id !== sessionId) return;
    this.remote.delete(sid);
    const set = this.remoteByOrg.get(row.oid);
    set?.delete(sid);
    if (set?.size === 0) this.remoteByOrg.delete(row.oid);
  }

  /** Re-reads every other node's sessions from PostgreSQL. */
  private async resync(): Promise<void> {
    try {
      const rows = await this.deps.cluster.listSessions();
      this.remote.clear();
      this.remoteByOrg.clear();
      for (const row of rows) if (row.node_id !== this.nodeId) this.remember(row);
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not re-read the cluster sessions');
    }
  }

  // ---- FleetPresence ----

  isOnline(sid: string): boolean {
    return this.deps.local.isOnline(sid) || this.remote.has(sid);
  }

  async checkOnline(sid: string): Promise<boolean> {
    if (this.deps.local.isOnline(sid)) return true;
    return (await this.deps.cluster.getSession(sid)) !== undefined;
  }

  session(sid: string): LiveSessionInfo | undefined {
    const local = this.deps.local.session(sid);
    if (local) return local;
    const r = this.remote.get(sid);
    return r ? { sid: r.sid, oid: r.oid, connected_at: r.connected_at, ext_ip: r.ext_ip, hostname: r.hostname } : undefined;
  }

  onlineSids(oid: string): string[] {
    return [...new Set([...this.deps.local.onlineSids(oid), ...(this.remoteByOrg.get(oid) ?? [])])];
  }

  onlineCount(oid: string): number {
    return this.onlineSids(oid).length;
  }

  disconnect(sid: string, code: number, reason: string): boolean {
    if (this.deps.local.disconnect(sid, code, reason)) return true;
    return this.remoteAction(sid, { op: 'close', sid, code, reason });
  }

  requestReconnect(sid: string, reason: string): boolean {
    if (this.deps.local.requestReconnect(sid, reason)) return true;
    return this.remoteAction(sid, { op: 'reconnect', sid, reason });
  }

  tagsChanged(sid: string, tags: ReadonlyArray<TagState>): void {
    if (this.deps.local.isOnline(sid)) return this.deps.local.tagsChanged(sid, tags);
    this.remoteAction(sid, { op: 'tags', sid, tags: tags.map((t) => ({ tag: t.tag, expires: t.expires })) });
  }

  async sendTask(sid: string, task: TaskMessage): Promise<boolean> {
    if (this.deps.local.isOnline(sid)) return this.deps.local.sendTask(sid, task);
    // Where the session is, authoritatively: the broadcast cache may be a moment behind.
    const row = await this.deps.cluster.getSession(sid);
    if (!row) return false;
    if (row.node_id === this.nodeId) return this.deps.local.sendTask(sid, task);
    return (await this.deps.channel.request(row.node_id, { op: 'task', sid, task })) === 'done';
  }

  localRouting(sid: string): RoutingTemplate | undefined {
    return this.deps.local.localRouting(sid);
  }

  /** Sends an action to the node the cache says holds the session; true when one does. */
  private remoteAction(sid: string, req: Parameters<NodeChannel['request']>[1]): boolean {
    const row = this.remote.get(sid);
    if (!row) return false;
    void this.deps.channel.request(row.node_id, req).then(
      (answer) => this.deps.logger.debug({ sid, op: req.op, node: row.node_id, answer }, 'remote session action'),
      (err: unknown) => this.deps.logger.warn({ err, sid, op: req.op, node: row.node_id }, 'remote session action failed'),
    );
    return true;
  }
}
