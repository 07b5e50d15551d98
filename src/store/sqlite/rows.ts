// Rows of the SQLite schema (migrations.ts) and their mapping to the domain records: booleans are stored
// as 0/1, tag lists as JSON text, and a few columns are renamed to avoid SQL keywords (desc, by).
import type { ApiKeyRecord, ApiKeyRole, InstallationKeyRecord, Org, SensorIssueKind, SensorRecord, SensorTag } from '../../domain/records.js';
import type { SequenceMark } from '../store.js';

export interface OrgRow {
  oid: string;
  name: string;
  quota: number | null;
  created: number;
}

export interface ApiKeyRow {
  key_id: string;
  oid: string;
  name: string;
  role: string;
  secret_hash: string;
  created: number;
}

export interface InstallationKeyRow {
  iid: string;
  oid: string;
  description: string;
  tags: string;
  secret_hash: string;
  created: number;
}

export interface SensorRow {
  sid: string;
  oid: string;
  iid: string;
  did: string | null;
  secret_hash: string;
  plat: number;
  arch: number;
  hostname: string;
  ext_ip: string;
  int_ip: string;
  mac: string;
  fingerprint: string;
  sensor_version: string;
  kernel: number;
  enroll: number;
  alive: number | null;
  isolated: number;
  should_isolate: number;
  deleted: number | null;
  issue_kind: string | null;
  issue_reason: string | null;
  issue_at: number | null;
  reenroll_hostname: string | null;
  reenroll_at: number | null;
  /** JSON array of the current tag names, sorted (computed by the query, see sqlite-store.ts). */
  tags_json: string;
}

export interface SensorTagRow {
  tag: string;
  added_by: string;
  added: number;
  expires: number | null;
}

export function toOrg(row: OrgRow): Org {
  return { oid: row.oid, name: row.name, quota: row.quota, created: row.created };
}

export function toApiKey(row: ApiKeyRow): ApiKeyRecord {
  return { key_id: row.key_id, oid: row.oid, name: row.name, role: row.role as ApiKeyRole, secret_hash: row.secret_hash, created: row.created };
}

export function toInstallationKey(row: InstallationKeyRow): InstallationKeyRecord {
  return { iid: row.iid, oid: row.oid, desc: row.description, tags: parseTagList(row.tags), secret_hash: row.secret_hash, created: row.created };
}

export function toSensor(row: SensorRow): SensorRecord {
  return {
    sid: row.sid,
    oid: row.oid,
    iid: row.iid,
    did: row.did,
    secret_hash: row.secret_hash,
    tags: parseTagList(row.tags_json),
    enroll: row.enroll,
    alive: row.alive,
    isolated: row.isolated !== 0,
    should_isolate: row.should_isolate !== 0,
    deleted: row.deleted,
    issue: row.issue_kind !== null && row.issue_at !== null ? { kind: row.issue_kind as SensorIssueKind, reason: row.issue_reason ?? '', at: row.issue_at } : null,
    reenroll: row.reenroll_at !== null ? { hostname: row.reenroll_hostname === '' ? null : row.reenroll_hostname, at: row.reenroll_at } : null,
    hostname: row.hostname,
    plat: row.plat,
    arch: row.arch,
    int_ip: row.int_ip,
    ext_ip: row.ext_ip,
    mac: row.mac,
    fingerprint: row.fingerprint,
    sensor_version: row.sensor_version,
    kernel: row.kernel !== 0,
  };
}

export function toSensorTag(row: SensorTagRow): SensorTag {
  return { tag: row.tag, by: row.added_by, added: row.added, expires: row.expires };
}

export function toSequenceMark(row: { sid: string; stream_id: string; seq: number }): SequenceMark {
  return { sid: row.sid, stream_id: row.stream_id, seq: row.seq };
}

export function bool(value: boolean): 0 | 1 {
  return value ? 1 : 0;
}

function parseTagList(json: string): string[] {
  const value: unknown = JSON.parse(json);
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string')) {
    throw new Error(`corrupt tag list in the store: ${json.slice(0, 100)}`);
  }
  return value;
}
