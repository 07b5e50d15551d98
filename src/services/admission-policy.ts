// Who may hold a session (decisions.md §3), decided from facts gathered beforehand so that the decision
// and taking the slot in the session registry happen in one synchronous step: no await between counting
// the organization's online sensors and registering the new session, hence no quota race.
import type { SensorRecord } from '../domain/records.js';

/** What the hello presents about its host. */
export interface PresentedHost {
  hostname: string;
  fingerprint: string;
}

/** The session this sensor id already holds on the node, if any. */
export interface LiveHost extends PresentedHost {
  sid: string;
}

export interface AdmissionFacts {
  sensor: SensorRecord;
  presented: PresentedHost;
  /** true when this hello enrolled the sensor just now. */
  enrolled: boolean;
  live: LiveHost | undefined;
  onlineInOrg: number;
  /** The organization's quota (most sensors online at once); null = unlimited. */
  quota: number | null;
}

export type AdmissionVerdict =
  | { kind: 'admit'; replacesLiveSession: boolean; offlineCloneOf: string | null }
  | { kind: 'deleted' }
  | { kind: 'reenroll' }
  | { kind: 'clone_conflict'; liveHostname: string }
  | { kind: 'over_quota'; quota: number };

/** Two hosts are different when their hostnames differ, or their fingerprints do (when both are known). */
export function isOtherHost(a: PresentedHost, b: PresentedHost): boolean {
  return a.hostname !== b.hostname || (a.fingerprint !== '' && b.fingerprint !== '' && a.fingerprint !== b.fingerprint);
}

export function decideAdmission(f: AdmissionFacts): AdmissionVerdict {
  const { sensor, presented, live } = f;
  if (sensor.deleted !== null) return { kind: 'deleted' };
  const order = sensor.reenroll;
  if (order && !f.enrolled && (order.hostname === null || order.hostname === presented.hostname)) return { kind: 'reenroll' };
  // Another host holds this sid right now: the newcomer is the clone; the live session keeps running.
  if (live && isOtherHost(live, presented)) return { kind: 'clone_conflict', liveHostname: live.hostname };
  // Replacing this sensor's own stale session takes no extra slot.
  if (!live && f.quota !== null && f.onlineInOrg >= f.quota) return { kind: 'over_quota', quota: f.quota };
  // Nobody holds the sid, but the host it was last seen on had another fingerprint: an offline clone.
  const offlineClone = !live && !f.enrolled && sensor.fingerprint !== '' && presented.fingerprint !== '' && sensor.fingerprint !== presented.fingerprint;
  return { kind: 'admit', replacesLiveSession: live !== undefined, offlineCloneOf: offlineClone ? sensor.hostname : null };
}
