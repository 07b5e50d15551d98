// Records as the API shows them: secrets never leave, times come as ISO strings plus Unix ms.
import type { ApiKeyRecord, InstallationKeyRecord, Org, SensorRecord, SensorTag } from '../domain/records.js';
import type { LiveSessionInfo } from '../services/presence.js';
import { DENIED_FOR, DENIED_FOR_MS } from '../protocol/close-codes.js';
import { badRequest } from './errors.js';

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : iso(ms);
}

export function orgView(org: Org, counts?: { sensors: number; online: number }) {
  return {
    oid: org.oid,
    name: org.name,
    quota: org.quota,
    created: iso(org.created),
    created_ts: org.created,
    ...(counts ?? {}),
  };
}

export function apiKeyView(key: ApiKeyRecord) {
  return { key_id: key.key_id, oid: key.oid, name: key.name, role: key.role, created: iso(key.created), created_ts: key.created };
}

export function installationKeyView(key: InstallationKeyRecord) {
  return { iid: key.iid, oid: key.oid, desc: key.desc, tags: key.tags.join(','), created: iso(key.created), created_ts: key.created };
}

/** Days a deleted sensor is remembered (and refused) before it is forgotten. */
const DELETED_KEPT_MS = DENIED_FOR_MS;

/**
 * What an operator needs to know at a glance: online (a live session), deleted, refused (its last
 * connection attempt was turned away, e.g. over quota or as a clone), or offline; with the reason.
 */
export function sensorState(s: SensorRecord, online: boolean): { state: 'online' | 'offline' | 'deleted' | 'refused'; state_reason: string | null } {
  if (s.deleted !== null) {
    return { state: 'deleted', state_reason: `deleted ${iso(s.deleted)}; refused when it connects (denied for ${DENIED_FOR}); forgotten after ${iso(s.deleted + DELETED_KEPT_MS)}` };
  }
  if (online) return { state: 'online', state_reason: null };
  const issue = s.issue;
  if (issue && (issue.kind === 'over_quota' || issue.kind === 'clone') && issue.at >= (s.alive ?? 0)) return { state: 'refused', state_reason: issue.reason };
  return { state: 'offline', state_reason: null };
}

export function sensorView(s: SensorRecord, online: boolean) {
  return {
    ...sensorState(s, online),
    last_issue: s.issue ? { kind: s.issue.kind, reason: s.issue.reason, at: iso(s.issue.at), at_ts: s.issue.at } : null,
    reenroll_order: s.reenroll ? { hostname: s.reenroll.hostname, at: iso(s.reenroll.at), at_ts: s.reenroll.at } : null,
    sid: s.sid,
    oid: s.oid,
    iid: s.iid,
    did: s.did,
    plat: s.plat,
    arch: s.arch,
    hostname: s.hostname,
    ext_ip: s.ext_ip,
    int_ip: s.int_ip,
    mac: s.mac,
    sensor_version: s.sensor_version,
    kernel: s.kernel,
    enroll: iso(s.enroll),
    enroll_ts: s.enroll,
    alive: isoOrNull(s.alive),
    alive_ts: s.alive,
    tags: s.tags,
    isolated: s.isolated,
    should_isolate: s.should_isolate,
    deleted: isoOrNull(s.deleted),
    deleted_ts: s.deleted,
  };
}

export function onlineView(session: LiveSessionInfo | undefined) {
  return session ? { connected_at: iso(session.connected_at), connected_ts: session.connected_at, ext_ip: session.ext_ip } : {};
}

export function tagView(t: SensorTag) {
  return { tag: t.tag, by: t.by, added: iso(t.added), added_ts: t.added, expires: isoOrNull(t.expires), expires_ts: t.expires };
}

export function tagsView(sid: string, tags: ReadonlyArray<SensorTag>) {
  return { tags: { [sid]: Object.fromEntries(tags.map((t) => [t.tag, tagView(t)])) } };
}

/** `"a, b"`, `["a", "b,c"]` → `["a", "b", "c"]`: trimmed, no empties, no duplicates. */
export function splitList(value: string | ReadonlyArray<string> | undefined): string[] {
  if (value === undefined) return [];
  const parts = (typeof value === 'string' ? [value] : value).flatMap((v) => v.split(','));
  return [...new Set(parts.map((p) => p.trim()).filter((p) => p.length > 0))];
}

const TAG_RE = /^[^\s,]{1,128}$/;

/** Tags from a list or comma-separated string; 400 naming `field` when one is not a valid tag. */
export function parseTags(value: string | ReadonlyArray<string> | undefined, field: string): string[] {
  const tags = splitList(value);
  const bad = tags.find((t) => !TAG_RE.test(t));
  if (bad !== undefined) throw badRequest(`body field "${field}" has an invalid tag "${bad.slice(0, 40)}": tags are 1-128 characters without spaces or commas`, field);
  return tags;
}

const MAX_QUOTA = 100_000_000;

/** A quota from JSON (integer or null) or a form ("25", "unlimited", "" or "null"); 400 naming `field` otherwise. */
export function parseQuota(value: unknown, field: string): number | null {
  if (value === null) return null;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_QUOTA) return value;
  if (typeof value === 'string') {
    const text = value.trim().toLowerCase();
    if (text === '' || text === 'unlimited' || text === 'null' || text === 'none') return null;
    if (/^\d{1,9}$/.test(text) && Number(text) <= MAX_QUOTA) return Number(text);
  }
  throw badRequest(`body field "${field}" must be an integer from 0 to ${MAX_QUOTA}, or null / "unlimited"`, field);
}
