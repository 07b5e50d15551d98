// Artifacts on PostgreSQL: ingestion keys, stored artifacts (their content lives on disk, see
// services/artifact-paths.ts), parts of unfinished multi-part uploads, and exports. Used by PostgresStore.
//
// Several nodes share these tables, so every `take*`, `finish*` and create-once method is one atomic
// statement: a DELETE ... RETURNING over rows picked with FOR UPDATE SKIP LOCKED (two nodes never take
// the same row, neither waits for the other), a conditional UPDATE, or INSERT ... ON CONFLICT DO NOTHING.
import type pg from 'pg';
import type {
  ArtifactExportRecord, ArtifactExportState, ArtifactListQuery, ArtifactPage, ArtifactPartRecord, ArtifactRecord, IngestionKeyRecord,
} from '../../domain/artifacts.js';
import type { TaskWrites } from '../store.js';
import { decodeArtifactCursor, encodeArtifactCursor } from '../cursor.js';
import { run, type Queryable } from './connection.js';

/** The record's columns (not the bookkeeping `announced`). */
const ARTIFACT_COLUMNS = 'log_id, oid, payload_id, log_type, source, original_path, size, sha256, md5, created, expires';
const EXPORT_COLUMNS = 'export_id, oid, log_ids, state, size, error, created, completed';
const KEY_COLUMNS = 'key_id, oid, name, secret_hash, created';

interface ExportRow {
  export_id: string;
  oid: string;
  log_ids: string[];
  state: ArtifactExportState;
  size: number;
  error: string | null;
  created: number;
  completed: number | null;
}

function toExport(r: ExportRow): ArtifactExportRecord {
  return { export_id: r.export_id, oid: r.oid, log_ids: r.log_ids, state: r.state, size: r.size, error: r.error, created: r.created, completed: r.completed };
}

function byCreated<T extends { created: number }>(key: (row: T) => string): (a: T, b: T) => number {
  return (a, b) => a.created - b.created || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
}

/** Marks artifacts and exports announced: part of the group commit that stores their events (event-log.ts). */
export async function markAnnounced(db: Queryable, announce: NonNullable<TaskWrites['announce']>): Promise<void> {
  if (announce.artifacts?.length) await run(db, 'UPDATE artifacts SET announced = true WHERE log_id = ANY ($1::text[])', [announce.artifacts]);
  if (announce.exports?.length) await run(db, 'UPDATE artifact_exports SET announced = true WHERE export_id = ANY ($1::text[])', [announce.exports]);
}

export class ArtifactTables {
  constructor(private readonly pool: pg.Pool) {}

  async createIngestionKey(k: IngestionKeyRecord): Promise<void> {
    await run(this.pool, `INSERT INTO ingestion_keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5)`, [k.key_id, k.oid, k.name, k.secret_hash, k.created]);
  }

  async getIngestionKey(keyId: string): Promise<IngestionKeyRecord | null> {
    const { rows } = await run<IngestionKeyRecord>(this.pool, `SELECT ${KEY_COLUMNS} FROM ingestion_keys WHERE key_id = $1`, [keyId]);
    return rows[0] ?? null;
  }

  async listIngestionKeys(oid: string): Promise<IngestionKeyRecord[]> {
    return (await run<IngestionKeyRecord>(this.pool, `SELECT ${KEY_COLUMNS} FROM ingestion_keys WHERE oid = $1 ORDER BY created, key_id`, [oid])).rows;
  }

  async deleteIngestionKey(oid: string, name: string): Promise<boolean> {
    return ((await run(this.pool, 'DELETE FROM ingestion_keys WHERE oid = $1 AND name = $2', [oid, name])).rowCount ?? 0) > 0;
  }

  async putPart(p: ArtifactPartRecord): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'INSERT INTO artifact_parts (oid, payload_id, part, size, received) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
      [p.oid, p.payload_id, p.part, p.size, p.received],
    );
    return (rowCount ?? 0) > 0;
  }

  async listParts(oid: string, payloadId: string): Promise<ArtifactPartRecord[]> {
    const { rows } = await run<ArtifactPartRecord>(
      this.pool,
      'SELECT oid, payload_id, part, size, received FROM artifact_parts WHERE oid = $1 AND payload_id = $2 ORDER BY part',
      [oid, payloadId],
    );
    return rows;
  }

  async deleteParts(oid: string, payloadId: string): Promise<void> {
    await run(this.pool, 'DELETE FROM artifact_parts WHERE oid = $1 AND payload_id = $2', [oid, payloadId]);
  }

  /**
   * One statement: the uploads are picked from a snapshot and their parts deleted; an upload is returned
   * only when this call deleted its parts, so of two nodes taking at once each upload goes to one.
   */
  async takeStaleUploads(receivedBefore: number, limit: number): Promise<Array<{ oid: string; payload_id: string }>> {
    const { rows } = await run<{ oid: string; payload_id: string }>(
      this.pool,
      'WITH stale AS (SELECT oid, payload_id FROM artifact_parts GROUP BY oid, payload_id HAVING MAX(received) < $1 ORDER BY MAX(received) LIMIT $2),' +
        ' gone AS (DELETE FROM artifact_parts p USING stale s WHERE p.oid = s.oid AND p.payload_id = s.payload_id RETURNING p.oid, p.payload_id)' +
        ' SELECT DISTINCT oid, payload_id FROM gone ORDER BY oid, payload_id',
      [receivedBefore, limit],
    );
    return rows;
  }

  /** Stores the artifact (once per payload id) and forgets its upload's parts, in one statement. */
  async createArtifact(a: ArtifactRecord): Promise<boolean> {
    const { rows } = await run<{ created: number }>(
      this.pool,
      `WITH ins AS (INSERT INTO artifacts (${ARTIFACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)` +
        ' ON CONFLICT (oid, payload_id) DO NOTHING RETURNING 1),' +
        ' parts AS (DELETE FROM artifact_parts WHERE oid = $2 AND payload_id = $3)' +
        ' SELECT COUNT(*) AS created FROM ins',
      [a.log_id, a.oid, a.payload_id, a.log_type, a.source, a.original_path, a.size, a.sha256, a.md5, a.created, a.expires],
    );
    return (rows[0]?.created ?? 0) > 0;
  }

  async getArtifact(oid: string, logId: string): Promise<ArtifactRecord | null> {
    const { rows } = await run<ArtifactRecord>(this.pool, `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE oid = $1 AND log_id = $2`, [oid, logId]);
    return rows[0] ?? null;
  }

  async getArtifactByPayloadId(oid: string, payloadId: string): Promise<ArtifactRecord | null> {
    const { rows } = await run<ArtifactRecord>(this.pool, `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE oid = $1 AND payload_id = $2`, [oid, payloadId]);
    return rows[0] ?? null;
  }

  async listArtifacts(q: ArtifactListQuery): Promise<ArtifactPage> {
    const values: unknown[] = [q.oid, q.start, q.end];
    const where = ['oid = $1', 'created >= $2', 'created <= $3'];
    if (q.source !== undefined) {
      values.push(q.source);
      where.push(`source = $${values.length}`);
    }
    if (q.cursor !== undefined) {
      const c = decodeArtifactCursor(q.cursor);
      values.push(c.created, c.logId);
      where.push(`(created, log_id) > ($${values.length - 1}, $${values.length})`);
    }
    values.push(q.limit + 1);
    const { rows } = await run<ArtifactRecord>(
      this.pool,
      `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE ${where.join(' AND ')} ORDER BY created, log_id LIMIT $${values.length}`,
      values,
    );
    const more = rows.length > q.limit;
    const artifacts = more ? rows.slice(0, q.limit) : rows;
    const last = artifacts.at(-1);
    return { artifacts, nextCursor: more && last ? encodeArtifactCursor({ created: last.created, logId: last.log_id }) : null };
  }

  async takeExpiredArtifacts(now: number, limit: number): Promise<ArtifactRecord[]> {
    const { rows } = await run<ArtifactRecord>(
      this.pool,
      'DELETE FROM artifacts WHERE log_id IN (SELECT log_id FROM artifacts WHERE expires <= $1 ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED)' +
        ` RETURNING ${ARTIFACT_COLUMNS}`,
      [now, limit],
    );
    return rows.sort((a, b) => a.expires - b.expires || (a.log_id < b.log_id ? -1 : a.log_id > b.log_id ? 1 : 0));
  }

  async isContentReferenced(sha256: string): Promise<boolean> {
    return ((await run(this.pool, 'SELECT 1 FROM artifacts WHERE sha256 = $1 LIMIT 1', [sha256])).rowCount ?? 0) > 0;
  }

  async bytesStored(oid: string): Promise<number> {
    const { rows } = await run<{ n: number }>(this.pool, 'SELECT COALESCE(SUM(size), 0)::bigint AS n FROM artifacts WHERE oid = $1', [oid]);
    return rows[0]?.n ?? 0;
  }

  async createExport(e: ArtifactExportRecord): Promise<void> {
    await run(
      this.pool,
      `INSERT INTO artifact_exports (${EXPORT_COLUMNS}) VALUES ($1, $2, $3::text[], $4, $5, $6, $7, $8)`,
      [e.export_id, e.oid, e.log_ids, e.state, e.size, e.error, e.created, e.completed],
    );
  }

  async getExport(oid: string, exportId: string): Promise<ArtifactExportRecord | null> {
    const { rows } = await run<ExportRow>(this.pool, `SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE oid = $1 AND export_id = $2`, [oid, exportId]);
    return rows[0] ? toExport(rows[0]) : null;
  }

  async finishExport(exportId: string, outcome: { state: 'ready'; size: number } | { state: 'failed'; error: string }, at: number): Promise<boolean> {
    const size = outcome.state === 'ready' ? outcome.size : 0;
    const error = outcome.state === 'failed' ? outcome.error.slice(0, 2000) : null;
    const { rowCount } = await run(
      this.pool,
      "UPDATE artifact_exports SET state = $1, size = $2, error = $3, completed = $4 WHERE export_id = $5 AND state = 'pending'",
      [outcome.state, size, error, at, exportId],
    );
    return (rowCount ?? 0) > 0;
  }

  async listUnannouncedArtifacts(limit: number): Promise<ArtifactRecord[]> {
    return (await run<ArtifactRecord>(this.pool, `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE NOT announced ORDER BY created, log_id LIMIT $1`, [limit])).rows;
  }

  async listUnannouncedExports(limit: number): Promise<ArtifactExportRecord[]> {
    const { rows } = await run<ExportRow>(
      this.pool,
      `SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE state = 'ready' AND NOT announced ORDER BY created, export_id LIMIT $1`,
      [limit],
    );
    return rows.map(toExport);
  }

  async listPendingExports(): Promise<ArtifactExportRecord[]> {
    const { rows } = await run<ExportRow>(this.pool, `SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE state = 'pending' ORDER BY created, export_id`);
    return rows.map(toExport);
  }

  async takeFinishedExports(createdBefore: number, limit: number): Promise<ArtifactExportRecord[]> {
    const { rows } = await run<ExportRow>(
      this.pool,
      'DELETE FROM artifact_exports WHERE export_id IN (SELECT export_id FROM artifact_exports' +
        " WHERE state <> 'pending' AND created < $1 ORDER BY created LIMIT $2 FOR UPDATE SKIP LOCKED)" +
        ` RETURNING ${EXPORT_COLUMNS}`,
      [createdBefore, limit],
    );
    return rows.map(toExport).sort(byCreated((r) => r.export_id));
  }
}
