// Artifacts on SQLite: ingestion keys, stored artifacts (their content lives on disk, see
// services/artifact-paths.ts), parts of unfinished multi-part uploads, and exports. Used by SqliteStore;
// kept apart so the store file stays about sensors and events.
import type Database from 'better-sqlite3';
import type {
  ArtifactExportRecord, ArtifactExportState, ArtifactListQuery, ArtifactPage, ArtifactPartRecord, ArtifactRecord, IngestionKeyRecord,
} from '../../domain/artifacts.js';
import { InvalidCursorError } from '../errors.js';
import { guarded } from './connection.js';

/** The record's columns (not the bookkeeping `announced`). */
const ARTIFACT_COLUMNS = 'log_id, oid, payload_id, log_type, source, original_path, size, sha256, md5, created, expires';
const EXPORT_COLUMNS = 'export_id, oid, log_ids, state, size, error, created, completed';

interface ExportRow {
  export_id: string;
  oid: string;
  log_ids: string;
  state: ArtifactExportState;
  size: number;
  error: string | null;
  created: number;
  completed: number | null;
}

function toExport(r: ExportRow): ArtifactExportRecord {
  return { ...r, log_ids: JSON.parse(r.log_ids) as string[] };
}

/** Position after the last artifact of a page: (created, log_id). */
function encodeCursor(a: ArtifactRecord): string {
  return Buffer.from(JSON.stringify({ k: 'a', t: a.created, id: a.log_id }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { t: number; id: string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('invalid artifact cursor');
  }
  const c = v as { k?: unknown; t?: unknown; id?: unknown } | null;
  if (!c || c.k !== 'a' || !Number.isSafeInteger(c.t) || typeof c.id !== 'string') throw new InvalidCursorError('invalid artifact cursor');
  return { t: c.t as number, id: c.id };
}

export class ArtifactTables {
  constructor(private readonly db: Database.Database) {}

  createIngestionKey(k: IngestionKeyRecord): void {
    guarded(() => this.db.prepare('INSERT INTO ingestion_keys (key_id, oid, name, secret_hash, created) VALUES (?, ?, ?, ?, ?)').run(k.key_id, k.oid, k.name, k.secret_hash, k.created));
  }

  getIngestionKey(keyId: string): IngestionKeyRecord | null {
    return (this.db.prepare('SELECT * FROM ingestion_keys WHERE key_id = ?').get(keyId) as IngestionKeyRecord | undefined) ?? null;
  }

  listIngestionKeys(oid: string): IngestionKeyRecord[] {
    return this.db.prepare('SELECT * FROM ingestion_keys WHERE oid = ? ORDER BY created, key_id').all(oid) as IngestionKeyRecord[];
  }

  deleteIngestionKey(oid: string, name: string): boolean {
    return guarded(() => this.db.prepare('DELETE FROM ingestion_keys WHERE oid = ? AND name = ?').run(oid, name).changes > 0);
  }

  putPart(p: ArtifactPartRecord): boolean {
    return guarded(() =>
      this.db.prepare('INSERT INTO artifact_parts (oid, payload_id, part, size, received) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(p.oid, p.payload_id, p.part, p.size, p.received).changes > 0,
    );
  }

  listParts(oid: string, payloadId: string): ArtifactPartRecord[] {
    return this.db.prepare('SELECT * FROM artifact_parts WHERE oid = ? AND payload_id = ? ORDER BY part').all(oid, payloadId) as ArtifactPartRecord[];
  }

  deleteParts(oid: string, payloadId: string): void {
    guarded(() => this.db.prepare('DELETE FROM artifact_parts WHERE oid = ? AND payload_id = ?').run(oid, payloadId));
  }

  takeStaleUploads(receivedBefore: number, limit: number): Array<{ oid: string; payload_id: string }> {
    return guarded(() =>
      this.db.transaction(() => {
        const stale = this.db
          .prepare('SELECT oid, payload_id FROM artifact_parts GROUP BY oid, payload_id HAVING MAX(received) < ? LIMIT ?')
          .all(receivedBefore, limit) as Array<{ oid: string; payload_id: string }>;
        const del = this.db.prepare('DELETE FROM artifact_parts WHERE oid = ? AND payload_id = ?');
        for (const s of stale) del.run(s.oid, s.payload_id);
        return stale;
      }).immediate(),
    );
  }

  createArtifact(a: ArtifactRecord): boolean {
    return guarded(() =>
      this.db.transaction(() => {
        const created = this.db
          .prepare(
            'INSERT INTO artifacts (log_id, oid, payload_id, log_type, source, original_path, size, sha256, md5, created, expires)' +
              ' VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (oid, payload_id) DO NOTHING',
          )
          .run(a.log_id, a.oid, a.payload_id, a.log_type, a.source, a.original_path, a.size, a.sha256, a.md5, a.created, a.expires).changes > 0;
        this.db.prepare('DELETE FROM artifact_parts WHERE oid = ? AND payload_id = ?').run(a.oid, a.payload_id);
        return created;
      }).immediate(),
    );
  }

  getArtifact(oid: string, logId: string): ArtifactRecord | null {
    return (this.db.prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE oid = ? AND log_id = ?`).get(oid, logId) as ArtifactRecord | undefined) ?? null;
  }

  getArtifactByPayloadId(oid: string, payloadId: string): ArtifactRecord | null {
    return (this.db.prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE oid = ? AND payload_id = ?`).get(oid, payloadId) as ArtifactRecord | undefined) ?? null;
  }

  listArtifacts(q: ArtifactListQuery): ArtifactPage {
    const where = ['oid = ?', 'created >= ?', 'created <= ?'];
    const params: unknown[] = [q.oid, q.start, q.end];
    if (q.source !== undefined) {
      where.push('source = ?');
      params.push(q.source);
    }
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor);
      where.push('(created > ? OR (created = ? AND log_id > ?))');
      params.push(c.t, c.t, c.id);
    }
    const rows = this.db
      .prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE ${where.join(' AND ')} ORDER BY created, log_id LIMIT ?`)
      .all(...params, q.limit + 1) as ArtifactRecord[];
    const more = rows.length > q.limit;
    const artifacts = more ? rows.slice(0, q.limit) : rows;
    return { artifacts, nextCursor: more ? encodeCursor(artifacts[artifacts.length - 1]!) : null };
  }

  takeExpiredArtifacts(now: number, limit: number): ArtifactRecord[] {
    return guarded(() =>
      this.db.transaction(() => {
        const rows = this.db.prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE expires <= ? ORDER BY expires LIMIT ?`).all(now, limit) as ArtifactRecord[];
        const del = this.db.prepare('DELETE FROM artifacts WHERE log_id = ?');
        for (const r of rows) del.run(r.log_id);
        return rows;
      }).immediate(),
    );
  }

  isContentReferenced(sha256: string): boolean {
    return this.db.prepare('SELECT 1 FROM artifacts WHERE sha256 = ? LIMIT 1').get(sha256) !== undefined;
  }

  bytesStored(oid: string): number {
    return (this.db.prepare('SELECT COALESCE(SUM(size), 0) AS n FROM artifacts WHERE oid = ?').get(oid) as { n: number }).n;
  }

  createExport(e: ArtifactExportRecord): void {
    guarded(() =>
      this.db
        .prepare('INSERT INTO artifact_exports (export_id, oid, log_ids, state, size, error, created, completed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(e.export_id, e.oid, JSON.stringify(e.log_ids), e.state, e.size, e.error, e.created, e.completed),
    );
  }

  getExport(oid: string, exportId: string): ArtifactExportRecord | null {
    const row = this.db.prepare(`SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE oid = ? AND export_id = ?`).get(oid, exportId) as ExportRow | undefined;
    return row ? toExport(row) : null;
  }

  finishExport(exportId: string, outcome: { state: 'ready'; size: number } | { state: 'failed'; error: string }, at: number): boolean {
    const size = outcome.state === 'ready' ? outcome.size : 0;
    const error = outcome.state === 'failed' ? outcome.error.slice(0, 2000) : null;
    return guarded(() =>
      this.db.prepare("UPDATE artifact_exports SET state = ?, size = ?, error = ?, completed = ? WHERE export_id = ? AND state = 'pending'")
        .run(outcome.state, size, error, at, exportId).changes > 0,
    );
  }

  listUnannouncedArtifacts(limit: number): ArtifactRecord[] {
    return this.db.prepare(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE announced = 0 ORDER BY created LIMIT ?`).all(limit) as ArtifactRecord[];
  }

  listUnannouncedExports(limit: number): ArtifactExportRecord[] {
    return (this.db.prepare(`SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE state = 'ready' AND announced = 0 ORDER BY created LIMIT ?`).all(limit) as ExportRow[]).map(toExport);
  }

  listPendingExports(): ArtifactExportRecord[] {
    return (this.db.prepare(`SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE state = 'pending' ORDER BY created`).all() as ExportRow[]).map(toExport);
  }

  takeFinishedExports(createdBefore: number, limit: number): ArtifactExportRecord[] {
    return guarded(() =>
      this.db.transaction(() => {
        const rows = (this.db
          .prepare(`SELECT ${EXPORT_COLUMNS} FROM artifact_exports WHERE state <> 'pending' AND created < ? ORDER BY created LIMIT ?`)
          .all(createdBefore, limit) as ExportRow[]).map(toExport);
        const del = this.db.prepare('DELETE FROM artifact_exports WHERE export_id = ?');
        for (const r of rows) del.run(r.export_id);
        return rows;
      }).immediate(),
    );
  }
}
