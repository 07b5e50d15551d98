// Cloud-produced deployment events (decisions.md §3): refusals, clones, crashes and quota changes, built
// as pipeline events of the `deployment` stream. Sensor-level ones carry the sensor's routing as the
// refused or reporting session presents it; quota_changed carries the organization's routing only.
import { deletedSensor, quotaChanged, sensorClone, sensorCrash, sensorOverQuota } from '../../catalogue/index.js';
import { DENIED_FOR } from '../../protocol/close-codes.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import { organizationEnvelope, type RoutingTemplate } from '../../pipeline/envelope.js';
import { sensorEvent } from './lifecycle-events.js';

export function sensorOverQuotaEvent(template: RoutingTemplate, now: number): PipelineEvent {
  const r = template.routing;
  return sensorEvent(template, 'sensor_over_quota', 'deployment', sensorOverQuota({ publicIp: r.ext_ip, internalIp: r.int_ip, hostname: r.hostname }), now);
}

export function deletedSensorEvent(template: RoutingTemplate, now: number): PipelineEvent {
  return sensorEvent(template, 'deleted_sensor', 'deployment', deletedSensor(DENIED_FOR), now);
}

export function sensorCloneEvent(template: RoutingTemplate, hostnames: { previous: string; current: string }, now: number): PipelineEvent {
  return sensorEvent(template, 'sensor_clone', 'deployment', sensorClone({ previousHostname: hostnames.previous, newHostname: hostnames.current }), now);
}

export function sensorCrashEvent(template: RoutingTemplate, crash: { fileId: number; lineNumber: number; threadId: number }, now: number): PipelineEvent {
  return sensorEvent(template, 'sensor_crash', 'deployment', sensorCrash(crash), now);
}

export function quotaChangedEvent(oid: string, quotas: { old: number | null; new: number | null }, now: number): PipelineEvent {
  const { json, event_id, event_time } = organizationEnvelope({ oid, event_type: 'quota_changed', event_time: now }, quotaChanged({ oldQuota: quotas.old, newQuota: quotas.new }));
  return { oid, sid: null, event_type: 'quota_changed', event_time, event_id, stream: 'deployment', json };
}
