// Output configuration parsing, one test per filter and per shape option, and the "__" rule.
import { describe, expect, it } from 'vitest';
import type { OutputFilters, OutputShape } from '../src/domain/outputs.js';
import { OUTPUT_MODULES } from '../src/sinks/outputs/modules/index.js';
import { outputView, parseOutputInput } from '../src/sinks/outputs/output-config.js';
import { compileFilter, shapeRecord, type LogEvent } from '../src/sinks/outputs/record-filter.js';

const SID_A = '0b0b0b0b-0000-4000-8000-00000000000a';
const SID_B = '0b0b0b0b-0000-4000-8000-00000000000b';

function ev(seq: number, event_type: string, routing: Record<string, unknown> = {}, event: Record<string, unknown> = { n: seq }): LogEvent {
  const sid = (routing.sid as string | undefined) ?? SID_A;
  return { seq, oid: 'o', sid, event_type, envelope: { routing: { oid: 'o', sid, event_type, event_time: 1_700_000_000_000 + seq, tags: [], ...routing }, event } };
}

const ALL: OutputFilters = { event_white_list: [], event_black_list: [], sid: null, tag: null, inv_id: null, sample_rate: 1 };
const PLAIN: OutputShape = { is_flat: false, is_no_routing: false, is_prefix_data: false };

describe('output filters', () => {
  const events = [
    ev(1, 'NEW_PROCESS'), ev(2, 'DNS_REQUEST', { sid: SID_B, tags: ['prod'] }), ev(3, 'NEW_PROCESS', { tags: ['prod', 'web'], investigation_id: 'case-1' }),
    ev(4, 'RECEIPT', { investigation_id: 'case-2' }), ev(5, 'CONNECTED'), ev(6, 'NEW_PROCESS', { sid: SID_B }),
  ];
  const pick = (f: Partial<OutputFilters>): number[] => events.filter(compileFilter({ ...ALL, ...f })).map((e) => e.seq);

  it('passes everything without filters', () => expect(pick({})).toEqual([1, 2, 3, 4, 5, 6]));
  it('event_white_list keeps only the listed types', () => expect(pick({ event_white_list: ['NEW_PROCESS', 'CONNECTED'] })).toEqual([1, 3, 5, 6]));
  it('event_black_list drops the listed types', () => expect(pick({ event_black_list: ['NEW_PROCESS'] })).toEqual([2, 4, 5]));
  it('sid keeps one sensor', () => expect(pick({ sid: SID_B })).toEqual([2, 6]));
  it('tag keeps events whose routing.tags hold the tag', () => expect(pick({ tag: 'prod' })).toEqual([2, 3]));
  it('inv_id keeps events of one investigation', () => expect(pick({ inv_id: 'case-2' })).toEqual([4]));
  it('sample_rate keeps one in N, the same ones every time', () => {
    expect(pick({ sample_rate: 2 })).toEqual([2, 4, 6]);
    expect(pick({ sample_rate: 3 })).toEqual([3, 6]);
  });
  it('filters combine', () => expect(pick({ event_white_list: ['NEW_PROCESS'], sid: SID_A, tag: 'web' })).toEqual([3]));

  it('an investigation id starting with "__" never passes, whatever the filters', () => {
    const internal = ev(7, 'SEGREGATE_NETWORK', { investigation_id: '__isolation' });
    expect(compileFilter(ALL)(internal)).toBe(false);
    expect(compileFilter({ ...ALL, inv_id: '__isolation' })(internal)).toBe(false);
    expect(compileFilter(ALL)(ev(8, 'SEGREGATE_NETWORK', { investigation_id: '_single' }))).toBe(true);
  });
});

describe('output shape options', () => {
  const e = ev(9, 'NEW_PROCESS', {}, { FILE_PATH: '/bin/sh', PARENT: { PROCESS_ID: 1 } });

  it('plain: the whole {routing, event} envelope', () => expect(shapeRecord(e, PLAIN)).toBe(e.envelope));
  it('is_no_routing: only the event', () => expect(shapeRecord(e, { ...PLAIN, is_no_routing: true })).toEqual({ FILE_PATH: '/bin/sh', PARENT: { PROCESS_ID: 1 } }));
  it('is_flat: one level, keys joined with "/"', () => {
    const flat = shapeRecord(e, { ...PLAIN, is_flat: true });
    expect(flat).toMatchObject({ 'routing/sid': SID_A, 'routing/event_type': 'NEW_PROCESS', 'event/FILE_PATH': '/bin/sh', 'event/PARENT/PROCESS_ID': 1, 'routing/tags': [] });
    expect(Object.values(flat).every((v) => typeof v !== 'object' || v === null || Array.isArray(v))).toBe(true);
  });
  it('is_prefix_data: wrapped under the event type', () => expect(shapeRecord(e, { ...PLAIN, is_prefix_data: true })).toEqual({ NEW_PROCESS: e.envelope }));
  it('options combine: no routing, flat, prefixed', () =>
    expect(shapeRecord(e, { is_flat: true, is_no_routing: true, is_prefix_data: true })).toEqual({ NEW_PROCESS: { FILE_PATH: '/bin/sh', 'PARENT/PROCESS_ID': 1 } }));
  it('billing_record has no event part: is_no_routing sends its record', () => {
    const billing: LogEvent = { seq: 1, oid: 'o', sid: null, event_type: 'billing_record', envelope: { record: { cat: 'sensor_hours', v: 3 }, routing: { oid: 'o' } } };
    expect(shapeRecord(billing, { ...PLAIN, is_no_routing: true })).toEqual({ cat: 'sensor_hours', v: 3 });
  });
});

describe('output configuration', () => {
  const base = { name: 'archive', module: 'file', type: 'event', dest_path: 'events.jsonl' };

  it('parses JSON and form-style values alike', () => {
    const parsed = parseOutputInput({ ...base, is_flat: 'true', is_no_routing: false, sample_rate: '10', event_white_list: 'NEW_PROCESS\nDNS_REQUEST', max_bytes: '2048', is_compression: 'true' }, OUTPUT_MODULES);
    expect(parsed).toEqual({
      name: 'archive', module: 'file', stream: 'event',
      filters: { event_white_list: ['NEW_PROCESS', 'DNS_REQUEST'], event_black_list: [], sid: null, tag: null, inv_id: null, sample_rate: 10 },
      shape: { is_flat: true, is_no_routing: false, is_prefix_data: false },
      fields: { dest_path: 'events.jsonl', max_bytes: 2048, is_compression: true },
    });
    expect(parseOutputInput({ ...base, type: undefined, stream: 'deployment' }, OUTPUT_MODULES).stream).toBe('deployment');
  });

  it.each([
    [{ ...base, name: undefined }, 'name', /"name" is required/],
    [{ ...base, name: 'bad name!' }, 'name', /letters, digits/],
    [{ ...base, module: 'carrier_pigeon' }, 'module', /unknown module "carrier_pigeon"/],
    [{ ...base, type: 'schedule' }, 'type', /unknown stream "schedule"/],
    [{ ...base, dest_path: undefined }, 'dest_path', /"dest_path" is required/],
    [{ ...base, colour: 'blue' }, 'colour', /unknown field "colour"/],
    [{ ...base, sample_rate: '0' }, 'sample_rate', /integer from 1/],
    [{ ...base, is_flat: 'maybe' }, 'is_flat', /true or false/],
    [{ ...base, event_white_list: ['NEW PROCESS'] }, 'event_white_list', /not an event type/],
    [{ ...base, sid: 'not-a-sid' }, 'sid', /sensor id/],
  ])('refuses %j naming the field', (raw, field, message) => {
    expect(() => parseOutputInput(raw as Record<string, unknown>, OUTPUT_MODULES)).toThrow(message);
    try {
      parseOutputInput(raw as Record<string, unknown>, OUTPUT_MODULES);
    } catch (err) {
      expect((err as { field: string }).field).toBe(field);
    }
  });

  it('shows secrets masked', () => {
    const view = outputView(
      { oid: 'o', name: 'w', module: 'x', stream: 'event', filters: ALL, shape: PLAIN, fields: { secret_key: 'abc', dest_host: 'h' }, created: 0, updated: 0 },
      { name: 'x', description: '', fields: { secret_key: { type: 'string', secret: true, description: '' }, dest_host: { type: 'string', description: '' } }, create: () => { throw new Error('unused'); } },
    );
    expect(view).toMatchObject({ secret_key: '********', dest_host: 'h', for: 'event' });
  });
});
