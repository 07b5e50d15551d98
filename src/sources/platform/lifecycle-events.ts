// Cloud-produced lifecycle events of a sensor (decisions.md §2): enrollment, CONNECTED and DISCONNECTED.
// They go through the same pipeline as sensor telemetry, with the sensor's routing.
import { connected, disconnected, enrollment } from '../../catalogue/index.js';
import { newId } from '../../domain/ids.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import type { RoutingTemplate } from '../../pipeline/envelope.js';

export function sensorEvent(template: RoutingTemplate, eventType: string, stream: PipelineEvent['stream'], payload: unknown, now: number): PipelineEvent {
  const event_id = newId();
  const r = template.routing;
  return {
    oid: r.oid,
    sid: r.sid,
    event_type: eventType,
    event_time: now,
    event_id,
    stream,
    json: template.envelope(eventType, now, event_id, JSON.stringify(payload)),
  };
}

export function enrollmentEvent(template: RoutingTemplate, now: number): PipelineEvent {
  const r = template.routing;
  return sensorEvent(template, 'enrollment', 'deployment', enrollment({ publicIp: r.ext_ip, internalIp: r.int_ip, hostname: r.hostname }), now);
}

export function connectedEvent(template: RoutingTemplate, host: { hostname: string; isSegregated: boolean; kernel: boolean; mac: string }, now: number): PipelineEvent {
  return sensorEvent(template, 'CONNECTED', 'event', connected(host), now);
}

export function disconnectedEvent(template: RoutingTemplate, reason: string, now: number): PipelineEvent {
  return sensorEvent(template, 'DISCONNECTED', 'event', disconnected(Math.floor(now / 1000), reason), now);
}
