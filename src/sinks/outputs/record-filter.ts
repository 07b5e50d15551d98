// Which stored events an output (or a live stream) sends, and in what shape (platform-reference.md §4.2):
// event white/black lists, sensor, tag, investigation id, 1-in-N sampling; is_no_routing, is_flat,
// is_prefix_data. An investigation id starting with "__" (Picket's own, e.g. "__isolation") never leaves.
import type { OutputFilters, OutputShape } from './output-config.js';

/** An event read back from the log, parsed once. */
export interface LogEvent {
  seq: number;
  oid: string;
  sid: string | null;
  event_type: string;
  envelope: Record<string, unknown>;
}

export const INTERNAL_INVESTIGATION_PREFIX = '__';

function routingOf(envelope: Record<string, unknown>): Record<string, unknown> | undefined {
  const r = envelope.routing;
  return typeof r === 'object' && r !== null ? (r as Record<string, unknown>) : undefined;
}

/** True when the event's investigation id is internal ("__…"): it goes to no output and no live stream. */
export function isInternal(envelope: Record<string, unknown>): boolean {
  const inv = routingOf(envelope)?.investigation_id;
  return typeof inv === 'string' && inv.startsWith(INTERNAL_INVESTIGATION_PREFIX);
}

export type RecordFilter = (e: LogEvent) => boolean;

export function compileFilter(filters: OutputFilters): RecordFilter {
  const white = filters.event_white_list.length > 0 ? new Set(filters.event_white_list) : null;
  const black = filters.event_black_list.length > 0 ? new Set(filters.event_black_list) : null;
  const { sid, tag, inv_id: inv, sample_rate: rate } = filters;
  return (e) => {
    if (isInternal(e.envelope)) return false;
    if (white && !white.has(e.event_type)) return false;
    if (black?.has(e.event_type)) return false;
    if (sid !== null && e.sid !== sid) return false;
    if (tag !== null || inv !== null) {
      const routing = routingOf(e.envelope);
      if (tag !== null && !(Array.isArray(routing?.tags) && routing.tags.includes(tag))) return false;
      if (inv !== null && routing?.investigation_id !== inv) return false;
    }
    // Sampling by log position: the same events are chosen again when a batch is retried.
    return rate <= 1 || e.seq % rate === 0;
  };
}

function flatten(value: Record<string, unknown>, prefix = '', into: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}/${key}` : key;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) flatten(v as Record<string, unknown>, path, into);
    else into[path] = v;
  }
  return into;
}

/** The record an output sends for an event, after its shape options. */
export function shapeRecord(e: LogEvent, shape: OutputShape): Record<string, unknown> {
  let body: Record<string, unknown> = e.envelope;
  if (shape.is_no_routing) {
    const inner = e.envelope.event ?? e.envelope.record;
    body = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : {};
  }
  if (shape.is_flat) body = flatten(body);
  if (shape.is_prefix_data) body = { [e.event_type]: body };
  return body;
}
