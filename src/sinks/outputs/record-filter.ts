// Which stored events an output (or a live stream) sends, and in what shape (platform-reference.md §4.2):
// event white/black lists, sensor, tag, investigation id, 1-in-N sampling; is_no_routing, is_flat,
// is_prefix_data. An investigation id starting with "__" (Picket's own, e.g. "__isolation") never leaves.
import type { OutputFilters, OutputShape } from './output-config.js';

/** An event read back from the log; `envelope` is parsed from `json` only when something needs it. */
export interface LogEvent {
  seq: number;
  oid: string;
  sid: string | null;
  event_type: string;
  /** The stored envelope text, when known (lets the "__" check skip parsing). */
  json?: string;
  readonly envelope: Record<string, unknown>;
}

/** A stored row as a LogEvent, parsing its JSON at most once and only on demand. */
export class StoredLogEvent implements LogEvent {
  private parsed: Record<string, unknown> | undefined;

  constructor(
    readonly seq: number,
    readonly oid: string,
    readonly sid: string | null,
    readonly event_type: string,
    readonly json: string,
  ) {}

  get envelope(): Record<string, unknown> {
    return (this.parsed ??= JSON.parse(this.json) as Record<string, unknown>);
  }

  /** routing.event_time without parsing the whole envelope (it is written right after event_type). */
  get eventTime(): number {
    const m = /"event_time":(\d+)/.exec(this.json);
    return m ? Number(m[1]) : 0;
  }
}

/** True when no shape option is set: the stored envelope is sent as it is. */
export function isPlainShape(shape: OutputShape): boolean {
  return !shape.is_flat && !shape.is_no_routing && !shape.is_prefix_data;
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

/** isInternal for a log event, without parsing when its text cannot hold an internal id. */
function isInternalEvent(e: LogEvent): boolean {
  if (e.json !== undefined && !e.json.includes('"investigation_id":"__')) return false;
  return isInternal(e.envelope);
}

export type RecordFilter = (e: LogEvent) => boolean;

export function compileFilter(filters: OutputFilters): RecordFilter {
  const white = filters.event_white_list.length > 0 ? new Set(filters.event_white_list) : null;
  const black = filters.event_black_list.length > 0 ? new Set(filters.event_black_list) : null;
  const { sid, tag, inv_id: inv, sample_rate: rate } = filters;
  return (e) => {
    if (isInternalEvent(e)) return false;
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
