// The envelope template and the string helpers on the ingest hot path: what they return is exactly what
// plain concatenation and JSON would give, whatever they do to the string's layout in memory.
import { describe, expect, it } from 'vitest';
import { isUuid, newId } from '../src/domain/ids.js';
import { detachedString, flattened } from '../src/domain/strings.js';
import { RoutingTemplate } from '../src/pipeline/envelope.js';

const routing = {
  oid: '11111111-1111-4111-8111-111111111111', iid: '22222222-2222-4222-8222-222222222222', sid: '33333333-3333-4333-8333-333333333333',
  did: null, plat: 0x10000000, arch: 2, hostname: 'host "one"', ext_ip: '10.0.0.1', int_ip: '192.168.1.2', tags: ['a', 'ü'],
};

describe('envelope and strings', () => {
  it('builds the {routing, event} envelope as JSON, with the per-event routing extras', () => {
    const template = new RoutingTemplate(routing);
    const id = newId();
    const plain = JSON.parse(template.envelope('NEW_PROCESS', 1_717_000_000_000, id, JSON.stringify({ FILE_PATH: 'C:\\x.exe' })));
    expect(plain).toEqual({
      routing: { ...routing, event_type: 'NEW_PROCESS', event_time: 1_717_000_000_000, event_id: id },
      event: { FILE_PATH: 'C:\\x.exe' },
    });
    const withExtras = JSON.parse(template.envelope('DNS_REQUEST', 1, id, '{}', { investigation_id: 'inv', this: 't', parent: 'p', target: 'x', hostname: 'other' }));
    expect(withExtras.routing).toEqual({ ...routing, hostname: 'other', event_type: 'DNS_REQUEST', event_time: 1, event_id: id, investigation_id: 'inv', this: 't', parent: 'p', target: 'x' });
  });

  it('newId gives distinct UUIDs; flattened and detachedString return the same text', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(isUuid(id)).toBe(true);
    let built = '';
    for (let i = 0; i < 50; i++) built += `piece ${i} é; `;
    const copy = built.slice();
    expect(flattened(built)).toBe(copy);
    expect(flattened('')).toBe('');
    expect(detachedString(built)).toBe(copy);
  });
});
