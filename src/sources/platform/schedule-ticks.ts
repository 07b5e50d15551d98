// Schedule events (platform-reference.md §5): `<freq>_per_org` with the organization's routing (sid of
// zeros, no tags), `<freq>_per_sensor` with the sensor's full routing and its runtime metadata, and
// `<freq>_per_cloud_adapter` with the adapter's name and description. Built as bus events of the
// `schedule` stream: schedule events are published, never stored (decisions.md §2, platform-reference §4.1).
import type { BusEvent } from '../../bus/event-bus.js';
import { perOrgTick, SCHEDULE_FREQUENCIES, type PerCloudAdapterPayload, type PerSensorPayload, type ScheduleFrequency } from '../../catalogue/index.js';
import { newId, NIL_UUID } from '../../domain/ids.js';
import type { SensorRecord } from '../../domain/records.js';
import { organizationEnvelope, RoutingTemplate } from '../../pipeline/envelope.js';
import type { CloudAdapterEntry } from '../../services/cloud-adapter-directory.js';
import type { SensorRuntimeMetrics } from '../../services/sensor-runtime.js';

export function perOrgEvent(freq: ScheduleFrequency, oid: string, now: number): BusEvent {
  const event_type = `${freq}_per_org`;
  const { json } = organizationEnvelope({ oid, event_type, event_time: now, sid: NIL_UUID, tags: [] }, perOrgTick(freq));
  return { stream: 'schedule', oid, sid: null, event_type, json };
}

export function perSensorEvent(freq: ScheduleFrequency, sensor: SensorRecord, mtd: SensorRuntimeMetrics, now: number): BusEvent {
  const event_type = `${freq}_per_sensor`;
  const template = new RoutingTemplate({
    oid: sensor.oid, iid: sensor.iid, sid: sensor.sid, did: sensor.did, plat: sensor.plat, arch: sensor.arch,
    hostname: sensor.hostname, ext_ip: sensor.ext_ip, int_ip: sensor.int_ip, tags: sensor.tags,
  });
  const payload: PerSensorPayload = {
    frequency: SCHEDULE_FREQUENCIES[freq],
    runtime_mtd: { entity_name: sensor.sid, entity_type: 'sensor', mtd, published_at: now },
  };
  return { stream: 'schedule', oid: sensor.oid, sid: sensor.sid, event_type, json: template.envelope(event_type, now, newId(), JSON.stringify(payload)) };
}

export function perCloudAdapterEvent(freq: ScheduleFrequency, oid: string, adapter: CloudAdapterEntry, now: number): BusEvent {
  const event_type = `${freq}_per_cloud_adapter`;
  const payload: PerCloudAdapterPayload = {
    frequency: SCHEDULE_FREQUENCIES[freq],
    adapter_name: adapter.adapter_name,
    runtime_mtd: {
      entity_name: adapter.sid,
      entity_type: 'adapter',
      mtd: { platform: adapter.platform, hostname: adapter.hostname, adapter_type: adapter.adapter_type },
      published_at: now,
    },
  };
  const { json } = organizationEnvelope({ oid, event_type, event_time: now, sid: adapter.sid, hostname: adapter.hostname, tags: [] }, payload);
  return { stream: 'schedule', oid, sid: adapter.sid, event_type, json };
}
