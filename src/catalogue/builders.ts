// Payload builders: the one place the cloud and the reference sensor get the `event` object of the
// events they produce, so the shapes cannot drift from the schemas. Times named `tsSec` are Unix seconds.
import { toHex32 } from '../domain/ids.js';
import type { DeletedSensorPayload, EnrollmentPayload, QuotaChangedPayload, SensorClonePayload, SensorCrashPayload, SensorOverQuotaPayload, CloudAdapterDisabledPayload } from './deployment-events.js';
import type { AckMessagesPayload, BackoffPayload } from './flow-control-events.js';
import type { ConnectedPayload, DataDroppedPayload, DisconnectedPayload, ShuttingDownPayload, StartingUpPayload, SyncPayload } from './lifecycle-events.js';
import { SCHEDULE_FREQUENCIES, type PerOrgPayload, type ScheduleFrequency } from './schedule-events.js';
import type { CloudNotificationPayload, CommandResultPayload, SelfTestPayload } from './tasking-events.js';

const MAC_RE = /^[0-9A-Fa-f]{2}([-:]?[0-9A-Fa-f]{2}){5}$/;

/** `42:01:0a:80:00:02` / `42010a800002` → `42-01-0A-80-00-02` (the seed's form); anything else → "". */
export function normaliseMac(mac: string): string {
  const m = mac.trim();
  if (!MAC_RE.test(m)) return '';
  const hex = m.replace(/[-:]/g, '').toUpperCase();
  return hex.match(/../g)!.join('-');
}

export function startingUp(tsSec: number): StartingUpPayload {
  return { STARTING_UP: { ts: tsSec }, ts: tsSec };
}

export function shuttingDown(tsSec: number): ShuttingDownPayload {
  return { SHUTTING_DOWN: { ts: tsSec }, ts: tsSec };
}

export function sync(tsSec: number): SyncPayload {
  return { ts: tsSec };
}

/** CONNECTED from the sensor's hello; the MAC is normalised to the seed's form ("" if not a MAC). */
export function connected(host: { hostname: string; isSegregated: boolean; kernel: boolean; mac: string }): ConnectedPayload {
  return {
    HOST_NAME: host.hostname,
    IS_SEGREGATED: host.isSegregated ? 1 : 0,
    KERNEL_ACQ_AVAILABLE: host.kernel ? 1 : 0,
    MAC_ADDRESS: normaliseMac(host.mac),
  };
}

export function disconnected(tsSec: number, reason: string): DisconnectedPayload {
  return { DISCONNECTED: {}, ts: tsSec, reason };
}

/** DATA_DROPPED; `sinceMs` (when the first drop happened) is written in seconds like every payload time. */
export function dataDropped(d: { droppedEvents: number; droppedBytes: number; sinceMs: number; tsSec: number }): DataDroppedPayload {
  return { dropped_events: d.droppedEvents, dropped_bytes: d.droppedBytes, since: Math.floor(d.sinceMs / 1000), ts: d.tsSec };
}

export function enrollment(a: { publicIp: string; internalIp: string; hostname: string }): EnrollmentPayload {
  return { public_ip: a.publicIp, internal_ip: a.internalIp, host_name: a.hostname };
}

export function sensorOverQuota(a: { publicIp: string; internalIp: string; hostname: string }): SensorOverQuotaPayload {
  return { public_ip: a.publicIp, internal_ip: a.internalIp, host_name: a.hostname };
}

/** deleted_sensor; the sensor is refused for 30 days by default (decisions.md §3). */
export function deletedSensor(deniedFor = '720h0m0s'): DeletedSensorPayload {
  return { denied_for: deniedFor };
}

export function sensorClone(c: { previousHostname: string; newHostname: string }): SensorClonePayload {
  return { previous_hostname: c.previousHostname, new_hostname: c.newHostname };
}

export function sensorCrash(c: { fileId: number; lineNumber: number; threadId: number }): SensorCrashPayload {
  return { crash_context: { FILE_ID: c.fileId, LINE_NUMBER: c.lineNumber, THREAD_ID: c.threadId } };
}

/** quota_changed; null means unlimited. */
export function quotaChanged(q: { oldQuota: number | null; newQuota: number | null }): QuotaChangedPayload {
  return { new_quota: q.newQuota, old_quota: q.oldQuota };
}

export function cloudAdapterDisabled(error: string): CloudAdapterDisabledPayload {
  return { error };
}

/** RECEIPT and every command result event (SEGREGATE_NETWORK, RUN, ...): `{ERROR, ERROR_MESSAGE?}`. */
export function commandResult(error: number, errorMessage?: string): CommandResultPayload {
  return errorMessage === undefined ? { ERROR: error } : { ERROR: error, ERROR_MESSAGE: errorMessage };
}

/** CLOUD_NOTIFICATION: the sensor's receipt of a task; ids are written as 32 hex digits (decisions.md §1). */
export function cloudNotification(n: {
  notificationId: string;
  notification: Record<string, unknown>;
  oid: string;
  sid: string;
  iid: string | null;
  plat: number;
  arch: number;
  /** Unix seconds; 0 if the task never expires. */
  expiry: number;
  error?: number;
  errorMessage?: string;
}): CloudNotificationPayload {
  const payload: CloudNotificationPayload = {
    NOTIFICATION_ID: n.notificationId,
    NOTIFICATION: n.notification,
    HCP_IDENT: {
      HCP_ORG_ID: toHex32(n.oid),
      HCP_SENSOR_ID: toHex32(n.sid),
      HCP_INSTALLER_ID: toHex32(n.iid),
      HCP_ARCHITECTURE: n.arch,
      HCP_PLATFORM: n.plat,
    },
    EXPIRY: n.expiry,
  };
  if (n.error !== undefined) payload.ERROR = n.error;
  if (n.errorMessage !== undefined) payload.ERROR_MESSAGE = n.errorMessage;
  return payload;
}

export function selfTest(tsSec: number): SelfTestPayload {
  return { ts: tsSec };
}

export function backoff(seconds: number, tsSec: number, reason?: string): BackoffPayload {
  return reason === undefined ? { seconds, ts: tsSec } : { seconds, ts: tsSec, reason };
}

export function ackMessages(seq: number): AckMessagesPayload {
  return { seq };
}

/** `<freq>_per_org` tick. */
export function perOrgTick(freq: ScheduleFrequency): PerOrgPayload {
  return { frequency: SCHEDULE_FREQUENCIES[freq] };
}
