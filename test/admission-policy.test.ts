// The admission policy and the refusal backoff as pure functions: every branch of decisions.md §3.
import { describe, expect, it } from 'vitest';
import type { SensorRecord } from '../src/domain/records.js';
import { decideAdmission, isOtherHost, type AdmissionFacts } from '../src/services/admission-policy.js';
import { RefusalBackoff } from '../src/services/refusal-backoff.js';

function sensor(overrides: Partial<SensorRecord> = {}): SensorRecord {
  return {
    sid: 's1', oid: 'o1', iid: 'i1', did: null, secret_hash: 'h', tags: [], enroll: 1, alive: 2, isolated: false, should_isolate: false,
    deleted: null, issue: null, reenroll: null, hostname: 'web-01', plat: 0x20000000, arch: 2, int_ip: '10.0.0.1', ext_ip: '1.2.3.4',
    mac: 'm', fingerprint: 'fp-1', sensor_version: 'v', kernel: false, ...overrides,
  };
}

function facts(overrides: Partial<AdmissionFacts> = {}): AdmissionFacts {
  return { sensor: sensor(), presented: { hostname: 'web-01', fingerprint: 'fp-1' }, enrolled: false, live: undefined, onlineInOrg: 0, quota: null, ...overrides };
}

describe('admission policy', () => {
  it('admits a known host with room under the quota', () => {
    expect(decideAdmission(facts({ quota: 2, onlineInOrg: 1 }))).toEqual({ kind: 'admit', replacesLiveSession: false, offlineCloneOf: null });
  });

  it('refuses a deleted sensor before anything else', () => {
    expect(decideAdmission(facts({ sensor: sensor({ deleted: 5, reenroll: { hostname: null, at: 1 } }), quota: 0 }))).toEqual({ kind: 'deleted' });
  });

  it('applies a re-enroll order to the named copy or to any copy, never to a sensor enrolling now', () => {
    const ordered = sensor({ reenroll: { hostname: 'copy', at: 1 } });
    expect(decideAdmission(facts({ sensor: ordered, presented: { hostname: 'copy', fingerprint: 'x' } }))).toEqual({ kind: 'reenroll' });
    expect(decideAdmission(facts({ sensor: ordered })).kind).toBe('admit');
    expect(decideAdmission(facts({ sensor: sensor({ reenroll: { hostname: null, at: 1 } }) })).kind).toBe('reenroll');
    expect(decideAdmission(facts({ sensor: sensor({ reenroll: { hostname: null, at: 1 } }), enrolled: true })).kind).toBe('admit');
  });

  it('refuses a second host while the sid is live, and replaces a stale session of the same host', () => {
    const live = { sid: 's1', hostname: 'web-01', fingerprint: 'fp-1' };
    expect(decideAdmission(facts({ live, presented: { hostname: 'web-02', fingerprint: 'fp-2' } }))).toEqual({ kind: 'clone_conflict', liveHostname: 'web-01' });
    expect(decideAdmission(facts({ live, presented: { hostname: 'web-02', fingerprint: 'fp-1' } })).kind).toBe('clone_conflict');
    expect(decideAdmission(facts({ live, presented: { hostname: 'web-01', fingerprint: 'fp-9' } })).kind).toBe('clone_conflict');
    // The same host reconnecting replaces its stale session and takes no extra slot, even at the quota.
    expect(decideAdmission(facts({ live, quota: 1, onlineInOrg: 1 }))).toEqual({ kind: 'admit', replacesLiveSession: true, offlineCloneOf: null });
  });

  it('refuses at the quota (0 included) and admits when unlimited', () => {
    expect(decideAdmission(facts({ quota: 2, onlineInOrg: 2 }))).toEqual({ kind: 'over_quota', quota: 2 });
    expect(decideAdmission(facts({ quota: 0, onlineInOrg: 0 }))).toEqual({ kind: 'over_quota', quota: 0 });
    expect(decideAdmission(facts({ quota: null, onlineInOrg: 1_000_000 })).kind).toBe('admit');
  });

  it('reports an offline clone (another fingerprint) but lets it in; a missing fingerprint or a rename is not a clone', () => {
    expect(decideAdmission(facts({ presented: { hostname: 'golden-2', fingerprint: 'fp-2' } }))).toEqual({ kind: 'admit', replacesLiveSession: false, offlineCloneOf: 'web-01' });
    expect(decideAdmission(facts({ presented: { hostname: 'renamed', fingerprint: 'fp-1' } }))).toMatchObject({ kind: 'admit', offlineCloneOf: null });
    expect(decideAdmission(facts({ presented: { hostname: 'web-01', fingerprint: '' } }))).toMatchObject({ offlineCloneOf: null });
    expect(decideAdmission(facts({ enrolled: true, presented: { hostname: 'web-01', fingerprint: 'fp-2' } }))).toMatchObject({ offlineCloneOf: null });
  });

  it('compares hosts by hostname, and by fingerprint when both have one', () => {
    expect(isOtherHost({ hostname: 'a', fingerprint: '' }, { hostname: 'a', fingerprint: 'x' })).toBe(false);
    expect(isOtherHost({ hostname: 'a', fingerprint: 'y' }, { hostname: 'a', fingerprint: 'x' })).toBe(true);
    expect(isOtherHost({ hostname: 'a', fingerprint: '' }, { hostname: 'b', fingerprint: '' })).toBe(true);
  });
});

describe('refusal backoff', () => {
  it('doubles per refusal of the same sensor up to the cap, per sensor, and starts over once admitted', () => {
    const b = new RefusalBackoff({ baseS: 30, capS: 300 });
    expect([1, 2, 3, 4, 5, 6].map((i) => b.refuse('a', i))).toEqual([30, 60, 120, 240, 300, 300]);
    expect(b.refuse('b', 7)).toBe(30);
    b.admitted('a');
    expect(b.refuse('a', 8)).toBe(30);
  });

  it('forgets a sensor not refused for two caps', () => {
    const b = new RefusalBackoff({ baseS: 1, capS: 10 });
    expect(b.refuse('a', 0)).toBe(1);
    expect(b.refuse('a', 1000)).toBe(2);
    expect(b.refuse('a', 1000 + 20_001)).toBe(1);
  });

  it('rejects a nonsensical configuration', () => {
    expect(() => new RefusalBackoff({ baseS: 0, capS: 1 })).toThrow(/base/);
    expect(() => new RefusalBackoff({ baseS: 5, capS: 1 })).toThrow(/base/);
  });
});
