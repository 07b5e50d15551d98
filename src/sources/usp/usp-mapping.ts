// From a USP data message to a sensor event (docs/usp.md §5): payload, event type, time, hostname and
// investigation id, each from the message's own field, else from a path in the payload set by the
// header's mapping, else a default.
import type { SensorEvent } from '../../protocol/messages.js';
import type { UspMapping } from './usp-header.js';
import type { UspDataMessage } from './usp-data-message.js';

export const DEFAULT_USP_EVENT_TYPE = 'log';
const EVENT_TYPE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface MappedEvent {
  event: SensorEvent;
  /** routing.hostname for this event when the mapping names one, else undefined (the adapter's own). */
  hostname: string | undefined;
}

/** Compiles `parsing_re`; Go-style named groups `(?P<name>…)` become JavaScript's `(?<name>…)`. */
export function compileParsingRe(source: string): RegExp {
  return new RegExp(source.replace(/\(\?P</g, '(?<'));
}

export class UspMapper {
  private readonly parsingRe: RegExp | undefined;

  constructor(
    private readonly mapping: UspMapping,
    private readonly now: () => number,
  ) {
    this.parsingRe = mapping.parsing_re ? compileParsingRe(mapping.parsing_re) : undefined;
  }

  map(m: UspDataMessage): MappedEvent {
    const payload = this.payload(m);
    const event: SensorEvent = {
      event_type: m.e ?? this.eventType(payload),
      event_time: m.s !== undefined && m.s > 0 ? m.s : this.eventTime(payload),
      event: payload,
    };
    const inv = m.inv ?? stringAt(payload, this.mapping.investigation_id_path);
    if (inv !== undefined) event.investigation_id = inv.slice(0, 256);
    if (m.this !== undefined) event.this = m.this;
    if (m.parent !== undefined) event.parent = m.parent;
    if (m.target !== undefined) event.target = m.target;
    const hostname = stringAt(payload, this.mapping.sensor_hostname_path);
    return { event, hostname: hostname !== undefined && hostname.length > 0 ? hostname.slice(0, 255) : undefined };
  }

  private payload(m: UspDataMessage): Record<string, unknown> {
    if (m.j !== undefined) return m.j;
    if (m.b !== undefined) return { base64: Buffer.from(m.b as Uint8Array).toString('base64') };
    const text = m.t!;
    if (this.parsingRe) {
      const match = this.parsingRe.exec(text);
      if (match?.groups) return { ...match.groups };
    }
    return { text };
  }

  private eventType(payload: Record<string, unknown>): string {
    const value = stringAt(payload, this.mapping.event_type_path);
    return value !== undefined && EVENT_TYPE_RE.test(value) ? value : DEFAULT_USP_EVENT_TYPE;
  }

  private eventTime(payload: Record<string, unknown>): number {
    const value = valueAt(payload, this.mapping.event_time_path);
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.round(value < 1e12 ? value * 1000 : value);
    if (typeof value === 'string' && value !== '') {
      const asNumber = Number(value);
      if (Number.isFinite(asNumber) && asNumber > 0) return Math.round(asNumber < 1e12 ? asNumber * 1000 : asNumber);
      const parsed = Date.parse(value);
      if (Number.isFinite(parsed)) return parsed;
    }
    return this.now();
  }
}

/** The value at a `/`-separated path (`detail/actor/name`); undefined when any step is missing. */
export function valueAt(payload: Record<string, unknown>, path: string | undefined): unknown {
  if (!path) return undefined;
  let current: unknown = payload;
  for (const key of path.split('/')) {
    if (key === '') continue;
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function stringAt(payload: Record<string, unknown>, path: string | undefined): string | undefined {
  const value = valueAt(payload, path);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}
