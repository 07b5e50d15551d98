// Rows of the PostgreSQL schema (migrations.ts) and their mapping to the domain records. Unlike SQLite,
// flags come back as booleans, BIGINTs as numbers (connection.ts) and tag lists as string arrays (TEXT[]),
// so the mapping is mostly renaming (description → desc, added_by → by) and folding the issue/re-enroll
// columns into their objects.
import type { ApiKeyRecord, ApiKeyRole, InstallationKeyRecord, Org, SensorIssueKind, SensorRecord, SensorTag } from '../../domain/records.js';

export interface InstallationKeyRow {
  iid: string;
  oid: string;
  description: string;
  tags: string[];
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
  kernel: boolean;
  enroll: number;
  alive: number | null;
  isolated: boolean;
  should_isolate: boolean;
  deleted: number | null;
  issue_kind: string | null;
  issue_reason: string | null;
  issue_at: number | null;
  reenroll_hostname: string | null;
  reenroll_at: number | null;
  /** The current tag names, sorted (computed by the query, see SENSOR_SELECT). */
  tags: string[];
}

export interface SensorTagRow {
  tag: string;
  added_by: string;
  added: number;
  expires: number | null;
}

/**
 * A sensor row with its current tags as a sorted array. The correlated subquery is a range read of the
 * sensor_tags primary key (sid, tag) per sensor inside the same statement: a page of sensors is one
 * query, not one per sensor. $1 is `now` (tags expiring at or before it are gone); the caller appends
 * WHERE / ORDER BY with parameters from $2 on.
 */
export const SENSOR_SELECT =
  'SELECT s.*, ARRAY(SELECT t.tag FROM sensor_tags t WHERE t.sid = s.sid AND (t.expires IS NULL OR t.expires > $1) ORDER BY t.tag) AS tags' +
  ' FROM sensors s';

export function toOrg(row: Org): Org {
  return { oid: row.oid, name: row.name, quota: row.quota, created: row.created };
}

export function toApiKey(row: ApiKeyRecord): ApiKeyRecord {
  return { key_id: row.key_id, oid: row.oid, name: row.name, role: row.role as ApiKeyRole, secret_hash: row.secret_hash, created: row.created };
}

export function toInstallationKey(row: InstallationKeyRow): InstallationKeyRecord {
  return { iid: row.iid, oid: row.oid, desc: row.description, tags: row.tags, secret_hash: row.secret_hash, created: row.created };
}

export function toSensor(row: SensorRow): SensorRecord {
  return {
    sid: row.sid,
    oid: row.oid,
    iid: row.iid,
    did: row.did,
    secret_hash: row.secret_hash,
    tags: row.tags,
    enroll: row.enroll,
    alive: row.alive,
    isolated: row.isolated,
    should_isolate: row.should_isolate,
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
    kernel: row.kernel,
  };
}

export function toSensorTag(row: SensorTagRow): SensorTag {
  return { tag: row.tag, by: row.added_by, added: row.added, expires: row.expires };
}
