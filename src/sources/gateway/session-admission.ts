// Taking a slot for a new session: decideAdmission (services/admission-policy.ts) over the facts of the
// moment, and registering the session when admitted, as one step no other hello can interleave with.
// On one node that step is synchronous over the session registry (LocalAdmission); in a cluster it is a
// PostgreSQL transaction under the organization's lock (src/cluster/cluster-admission.ts).
import type { SensorRecord } from '../../domain/records.js';
import { CloseCode } from '../../protocol/close-codes.js';
import { decideAdmission, type AdmissionVerdict, type PresentedHost } from '../../services/admission-policy.js';
import type { RegisteredSession, SessionRegistry } from './session-registry.js';

export interface AdmissionRequest {
  sensor: SensorRecord;
  presented: PresentedHost;
  /** true when this hello enrolled the sensor just now. */
  enrolled: boolean;
  /** The organization's quota as read before admission (a cluster re-reads it under its lock). */
  quota: number | null;
}

export interface AdmissionOutcome {
  verdict: AdmissionVerdict;
  /**
   * The sensor's previous session was on a node that is gone: nobody will emit its DISCONNECTED, so the
   * admitting session does, before its CONNECTED.
   */
  orphaned: boolean;
}

export interface SessionAdmission {
  /** Decides; when admitted, the session is registered and a previous session of the sensor closed. */
  admit(session: RegisteredSession, request: AdmissionRequest): Promise<AdmissionOutcome>;
  /** The session ended (or was never admitted): frees its slot if it still holds it. Idempotent. */
  release(session: RegisteredSession): void;
}

export const REPLACED_REASON = 'replaced by a newer session of the same sensor';

export class LocalAdmission implements SessionAdmission {
  constructor(private readonly registry: SessionRegistry) {}

  // No await inside: counting the organization's sessions and registering this one happen in one step.
  async admit(session: RegisteredSession, r: AdmissionRequest): Promise<AdmissionOutcome> {
    const live = this.registry.get(session.sid);
    const verdict = decideAdmission({ ...r, live, onlineInOrg: this.registry.onlineCount(session.oid) });
    if (verdict.kind === 'admit') {
      this.registry.add(session);
      if (live && live !== session) live.close(CloseCode.replaced, REPLACED_REASON);
    }
    return { verdict, orphaned: false };
  }

  release(session: RegisteredSession): void {
    this.registry.remove(session);
  }
}
