// Sensors, their tags and their rate-limited notices, on PostgreSQL. Used by PostgresStore.
//
// - Hostname prefixes match with ILIKE on a COLLATE "C" column: ASCII-only case-insensitive (as SQLite's
//   LIKE), with %, _ and \ in the prefix escaped so they match literally.
// - Batched writes (touchAlive, addSensorTags) are one statement over UNNESTed arrays.
// - claimSensorNotice is one conditional upsert: of concurrent claims (any node) exactly one wins.
// - forgetDeletedSensors picks its sensors with FOR UPDATE SKIP LOCKED, so two nodes forgetting at once
//   never take the same sensor, and takes the event-log lock first, like every appending transaction,
//   because it deletes sequence marks and tasks that a group commit may be writing (event-log.ts).
import type pg from 'pg';
import type { ReenrollOrder, SensorHost, SensorIssue, SensorRecord, SensorTag } from '../../domain/records.js';
import { decodeSensorCursor, encodeSensorCursor } from '../cursor.js';
import { StoreNotFoundError } from '../errors.js';
import type { NewSensor, SensorListQuery, SensorPage } from '../store.js';
import { pageSize } from './batches.js';
import { run, withTransaction } from './connection.js';
import { lockEventLog } from './event-log.js';
import { SENSOR_SELECT, toSensor, toSensorTag, type SensorRow, type SensorTagRow } from './rows.js';

/** Tags given at enrollment (from the installation key) are recorded as added by this. */
const ENROLLMENT_TAGGER = 'installation-key';

/** ILIKE pattern matching values that start with `prefix` literally (with ESCAPE '\'). */
function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

/** Tables holding per-sensor rows that go when a deleted sensor is forgotten (sensors last: tags reference it). */
const FORGOTTEN = ['sensor_tags', 'sequence_marks', 'sensor_notices', 'tasks', 'sensors'] as const;

export class SensorTables {
  constructor(private readonly pool: pg.Pool) {}

  async create(s: NewSensor): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      await run(
        client,
        'INSERT INTO sensors (sid, oid, iid, did, secret_hash, plat, arch, hostname, ext_ip, int_ip, mac, fingerprint, sensor_version, kernel, enroll)' +
          ' VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)',
        [s.sid, s.oid, s.iid, s.secret_hash, s.plat, s.arch, s.hostname, s.ext_ip, s.int_ip, s.mac, s.fingerprint, s.sensor_version, s.kernel, s.enroll],
      );
      if (s.tags.length === 0) return;
      await run(
        client,
        'INSERT INTO sensor_tags (sid, tag, added_by, added, expires) SELECT $1, t, $2, $3, NULL FROM unnest($4::text[]) AS t ON CONFLICT (sid, tag) DO NOTHING',
        [s.sid, ENROLLMENT_TAGGER, s.enroll, s.tags],
      );
    });
  }

  async get(sid: string): Promise<SensorRecord | null> {
    const { rows } = await run<SensorRow>(this.pool, `${SENSOR_SELECT} WHERE s.sid = $2`, [Date.now(), sid]);
    return rows[0] ? toSensor(rows[0]) : null;
  }

  async list(oid: string, query: SensorListQuery): Promise<SensorPage> {
    const limit = pageSize(query.limit);
    const after = query.cursor !== undefined ? decodeSensorCursor(query.cursor).sid : '';
    const prefix = query.hostnamePrefix !== undefined && query.hostnamePrefix !== '' ? query.hostnamePrefix : null;
    const values: unknown[] = [Date.now(), oid, after];
    let where = 's.oid = $2 AND s.sid > $3';
    if (!query.includeDeleted) where += ' AND s.deleted IS NULL';
    if (prefix !== null) {
      values.push(likePrefix(prefix));
      where += ` AND s.hostname ILIKE $${values.length} ESCAPE '\\'`;
    }
    values.push(limit + 1);
    const { rows } = await run<SensorRow>(this.pool, `${SENSOR_SELECT} WHERE ${where} ORDER BY s.sid LIMIT $${values.length}`, values);
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const last = rows.at(-1);
    return { sensors: rows.map(toSensor), nextCursor: more && last ? encodeSensorCursor({ sid: last.sid }) : null };
  }

  async updateHost(sid: string, host: SensorHost & { isolated: boolean }, alive: number): Promise<void> {
    const { rowCount } = await run(
      this.pool,
      'UPDATE sensors SET hostname = $1, plat = $2, arch = $3, int_ip = $4, ext_ip = $5, mac = $6, fingerprint = $7,' +
        ' sensor_version = $8, kernel = $9, isolated = $10, alive = $11 WHERE sid = $12',
      [host.hostname, host.plat, host.arch, host.int_ip, host.ext_ip, host.mac, host.fingerprint, host.sensor_version, host.kernel, host.isolated, alive, sid],
    );
    if (!rowCount) throw new StoreNotFoundError(`no sensor ${sid}`);
  }

  /** One UPDATE for the whole flush; never moves alive backwards; unknown sensors are skipped. */
  async touchAlive(updates: ReadonlyArray<{ sid: string; alive: number }>): Promise<void> {
    if (updates.length === 0) return;
    // One row per sensor (the latest time), in sid order: an UPDATE ... FROM updates a row once, and
    // concurrent flushes from several nodes lock rows in the same order.
    const latest = new Map<string, number>();
    for (const u of updates) latest.set(u.sid, Math.max(u.alive, latest.get(u.sid) ?? -Infinity));
    const sids = [...latest.keys()].sort();
    await run(
      this.pool,
      'UPDATE sensors s SET alive = u.alive FROM unnest($1::text[], $2::bigint[]) AS u(sid, alive)' +
        ' WHERE s.sid = u.sid AND (s.alive IS NULL OR s.alive < u.alive)',
      [sids, sids.map((sid) => latest.get(sid))],
    );
  }

  async setDeleted(sid: string, at: number | null): Promise<boolean> {
    return ((await run(this.pool, 'UPDATE sensors SET deleted = $1 WHERE sid = $2', [at, sid])).rowCount ?? 0) > 0;
  }

  async setShouldIsolate(sid: string, value: boolean): Promise<void> {
    const { rowCount } = await run(this.pool, 'UPDATE sensors SET should_isolate = $1 WHERE sid = $2', [value, sid]);
    if (!rowCount) throw new StoreNotFoundError(`no sensor ${sid}`);
  }

  async recordIssue(sid: string, issue: SensorIssue | null): Promise<void> {
    await run(this.pool, 'UPDATE sensors SET issue_kind = $1, issue_reason = $2, issue_at = $3 WHERE sid = $4', [
      issue?.kind ?? null, issue?.reason ?? null, issue?.at ?? null, sid,
    ]);
  }

  async setReenrollOrder(sid: string, order: ReenrollOrder | null): Promise<boolean> {
    const { rowCount } = await run(this.pool, 'UPDATE sensors SET reenroll_hostname = $1, reenroll_at = $2 WHERE sid = $3', [
      order ? (order.hostname ?? '') : null, order?.at ?? null, sid,
    ]);
    return (rowCount ?? 0) > 0;
  }

  /** The upsert only overwrites a notice at least a window old; whether a row was written says who won. */
  async claimNotice(sid: string, kind: string, now: number, windowMs: number): Promise<boolean> {
    const window = Math.min(windowMs, Number.MAX_SAFE_INTEGER);
    const { rowCount } = await run(
      this.pool,
      'INSERT INTO sensor_notices (sid, kind, at) VALUES ($1, $2, $3)' +
        ' ON CONFLICT (sid, kind) DO UPDATE SET at = excluded.at WHERE excluded.at - sensor_notices.at >= $4',
      [sid, kind, now, window],
    );
    return (rowCount ?? 0) > 0;
  }

  async clearNotice(sid: string, kind: string): Promise<void> {
    await run(this.pool, 'DELETE FROM sensor_notices WHERE sid = $1 AND kind = $2', [sid, kind]);
  }

  async forgetDeleted(deletedBefore: number, limit: number): Promise<string[]> {
    return withTransaction(this.pool, async (client) => {
      await lockEventLog(client);
      const { rows } = await run<{ sid: string }>(
        client,
        'SELECT sid FROM sensors WHERE deleted IS NOT NULL AND deleted <= $1 ORDER BY deleted, sid LIMIT $2 FOR UPDATE SKIP LOCKED',
        [deletedBefore, pageSize(limit)],
      );
      const sids = rows.map((r) => r.sid);
      if (sids.length === 0) return sids;
      for (const table of FORGOTTEN) await run(client, `DELETE FROM ${table} WHERE sid = ANY ($1::text[])`, [sids]);
      return sids;
    });
  }

  // Tags

  async getTags(sid: string, now: number): Promise<SensorTag[]> {
    const { rows } = await run<SensorTagRow>(
      this.pool,
      'SELECT tag, added_by, added, expires FROM sensor_tags WHERE sid = $1 AND (expires IS NULL OR expires > $2) ORDER BY tag',
      [sid, now],
    );
    return rows.map(toSensorTag);
  }

  /** One upsert; a tag named twice in one call ends as its last mention says (as if applied in order). */
  async addTags(sid: string, tags: ReadonlyArray<SensorTag>): Promise<void> {
    if (tags.length === 0) return;
    const last = [...new Map(tags.map((t) => [t.tag, t])).values()];
    await run(
      this.pool,
      'INSERT INTO sensor_tags (sid, tag, added_by, added, expires) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])' +
        ' ON CONFLICT (sid, tag) DO UPDATE SET added_by = excluded.added_by, added = excluded.added, expires = excluded.expires',
      [sid, last.map((t) => t.tag), last.map((t) => t.by), last.map((t) => t.added), last.map((t) => t.expires)],
    );
  }

  async removeTags(sid: string, tags: ReadonlyArray<string>): Promise<void> {
    if (tags.length === 0) return;
    await run(this.pool, 'DELETE FROM sensor_tags WHERE sid = $1 AND tag = ANY ($2::text[])', [sid, [...tags]]);
  }
}
