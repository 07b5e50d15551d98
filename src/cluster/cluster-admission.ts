// Admission across the cluster (SessionAdmission): the decision of services/admission-policy.ts taken in
// one PostgreSQL transaction under the organization's row lock (ClusterStore.admitSession), so quota,
// clone and replacement rules see every node's sessions and no two nodes can both take the last slot.
// A replaced session on another node is closed there over NATS; when that node is gone, the caller is
// told (orphaned) and emits the old session's DISCONNECTED itself.
import type { Logger } from '../observability/logger.js';
import { CloseCode } from '../protocol/close-codes.js';
import { decideAdmission } from '../services/admission-policy.js';
import { REPLACED_REASON, type AdmissionOutcome, type AdmissionRequest, type SessionAdmission } from '../sources/gateway/session-admission.js';
import type { RegisteredSession, SessionRegistry } from '../sources/gateway/session-registry.js';
import type { ClusterSessionRow, ClusterStore } from '../store/cluster-store.js';
import type { ClusterPresence } from './cluster-presence.js';
import type { NodeChannel } from './node-channel.js';

export class ClusterAdmission implements SessionAdmission {
  /** Sessions admitted here whose row may exist: released once. */
  private readonly held = new Set<string>();

  constructor(
    private readonly deps: {
      cluster: ClusterStore;
      local: SessionRegistry;
      presence: ClusterPresence;
      channel: NodeChannel;
      logger: Logger;
    },
  ) {}

  async admit(session: RegisteredSession & { fingerprint: string }, r: AdmissionRequest): Promise<AdmissionOutcome> {
    const { cluster, local, presence, channel } = this.deps;
    const row: ClusterSessionRow = {
      sid: session.sid, oid: session.oid, node_id: channel.nodeId, session_id: session.sessionId, connected_at: session.connected_at,
      ext_ip: session.ext_ip, hostname: session.hostname, fingerprint: session.fingerprint,
    };
    const { verdict, replaced } = await cluster.admitSession(row, (facts) => {
      const live = facts.live ? { sid: facts.live.sid, hostname: facts.live.hostname, fingerprint: facts.live.fingerprint } : undefined;
      const v = decideAdmission({ ...r, live, onlineInOrg: facts.onlineInOrg, quota: facts.quota });
      return { admit: v.kind === 'admit', verdict: v };
    });
    if (verdict.kind !== 'admit') return { verdict, orphaned: false };
    this.held.add(session.sessionId);
    const previousHere = local.add(session);
    presence.announceUp(row);
    let orphaned = false;
    if (previousHere && previousHere !== session) {
      previousHere.close(CloseCode.replaced, REPLACED_REASON);
    } else if (replaced && replaced.session_id !== session.sessionId) {
      if (replaced.node_id === channel.nodeId) {
        // A row of this node without a live session here: its end was never recorded.
        orphaned = true;
      } else {
        const answer = await channel.request(replaced.node_id, { op: 'close', sid: replaced.sid, session_id: replaced.session_id, code: CloseCode.replaced, reason: REPLACED_REASON });
        orphaned = answer === 'node_gone';
        if (orphaned) this.deps.logger.info({ sid: session.sid, node: replaced.node_id }, 'previous session was on a node that is gone; closing it on its behalf');
      }
    }
    return { verdict, orphaned };
  }

  release(session: RegisteredSession): void {
    this.deps.local.remove(session);
    if (!this.held.delete(session.sessionId)) return;
    this.deps.presence.announceDown({ sid: session.sid, session_id: session.sessionId, node_id: this.deps.channel.nodeId });
    this.deps.cluster.releaseSession(session.sid, session.sessionId).catch((err: unknown) => {
      // The row stays until this node is declared dead or the sensor comes back (which replaces it).
      this.deps.logger.error({ err, sid: session.sid }, 'could not release the cluster session row');
    });
  }
}
