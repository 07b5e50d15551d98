// Builds the `{routing, event}` envelope of decisions.md §1 as JSON text. A sensor session's routing
// fields are constant between tag changes, so they are serialised once into a template and each event
// only adds its type, time, id and payload: one JSON.stringify of the payload per event on the hot path.
import { newId } from '../domain/ids.js';
import { detachedString, flattened } from '../domain/strings.js';

/** Routing fields that describe the sensor an event comes from (constant during a session). */
export interface SensorRouting {
  oid: string;
  iid: string;
  sid: string;
  did: string | null;
  plat: number;
  arch: number;
  hostname: string;
  ext_ip: string;
  int_ip: string;
  tags: string[];
}

/** Per-event routing fields beyond the sensor's. */
export interface EventRoutingExtras {
  /** The host this event is about when it is not the sensor's own (log adapters mapping a hostname per event). */
  hostname?: string;
  investigation_id?: string;
  this?: string;
  parent?: string;
  target?: string;
}

/** Most per-event hostname variants a template keeps (a log adapter relaying for many hosts). */
const MAX_HOSTNAME_VARIANTS = 1024;

export class RoutingTemplate {
  private readonly prefix: string;
  private variants: Map<string, RoutingTemplate> | undefined;

  constructor(readonly routing: SensorRouting) {
    const r = routing;
    // `{"routing":{...sensor fields...,` — event_type, event_time and event_id follow per event.
    // Kept contiguous: joined to every event, a tree of pieces would be walked each time (domain/strings.ts).
    this.prefix = detachedString(
      `{"routing":{"oid":${JSON.stringify(r.oid)},"iid":${JSON.stringify(r.iid)},"sid":${JSON.stringify(r.sid)},` +
        `"did":${JSON.stringify(r.did)},"plat":${r.plat},"arch":${r.arch},"hostname":${JSON.stringify(r.hostname)},` +
        `"ext_ip":${JSON.stringify(r.ext_ip)},"int_ip":${JSON.stringify(r.int_ip)},"tags":${JSON.stringify(r.tags)},`,
    );
  }

  withTags(tags: string[]): RoutingTemplate {
    return new RoutingTemplate({ ...this.routing, tags: [...tags] });
  }

  /** The envelope JSON for one event; `payloadJson` is the already-serialised payload object. */
  envelope(eventType: string, eventTime: number, eventId: string, payloadJson: string, extras?: EventRoutingExtras): string {
    if (extras?.hostname !== undefined && extras.hostname !== this.routing.hostname) {
      return this.forHostname(extras.hostname).envelope(eventType, eventTime, eventId, payloadJson, { ...extras, hostname: undefined });
    }
    let tail = '';
    if (extras) {
      if (extras.investigation_id !== undefined) tail += `,"investigation_id":${JSON.stringify(extras.investigation_id)}`;
      if (extras.this !== undefined) tail += `,"this":${JSON.stringify(extras.this)}`;
      if (extras.parent !== undefined) tail += `,"parent":${JSON.stringify(extras.parent)}`;
      if (extras.target !== undefined) tail += `,"target":${JSON.stringify(extras.target)}`;
    }
    // Flat at once: it is stored, handed to the append thread and published as one string (domain/strings.ts).
    return flattened(
      `${this.prefix}"event_type":${JSON.stringify(eventType)},"event_time":${eventTime},"event_id":"${eventId}"${tail}},` +
        `"event":${payloadJson}}`,
    );
  }

  private forHostname(hostname: string): RoutingTemplate {
    this.variants ??= new Map();
    let variant = this.variants.get(hostname);
    if (!variant) {
      if (this.variants.size >= MAX_HOSTNAME_VARIANTS) this.variants.clear();
      variant = new RoutingTemplate({ ...this.routing, hostname });
      this.variants.set(hostname, variant);
    }
    return variant;
  }
}

/** Envelope for events whose routing is not a sensor's (organization-level platform events). */
export function organizationEnvelope(routing: { oid: string; event_type: string; event_time?: number; event_id?: string } & Record<string, unknown>, payload: unknown): { json: string; event_id: string; event_time: number } {
  const event_time = routing.event_time ?? Date.now();
  const event_id = routing.event_id ?? newId();
  const json = JSON.stringify({ routing: { ...routing, event_time, event_id }, event: payload });
  return { json, event_id, event_time };
}
