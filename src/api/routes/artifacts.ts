// Artifacts (docs/artifacts.md, platform-reference.md §6.1): ingestion keys, POST /ingest (HTTP Basic:
// oid : ingestion key, lc-* headers, raw bytes, parts of up to 16 MiB), listing, download, exports.
import { createReadStream } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { ArtifactExportRecord, ArtifactRecord, IngestionKeyRecord } from '../../domain/artifacts.js';
import { isUuid } from '../../domain/ids.js';
import type { ArtifactService } from '../../services/artifact-service.js';
import { MAX_EXPORT_ARTIFACTS } from '../../services/artifact-exports.js';
import { newToken, parseToken, verifySecret } from '../../services/secrets.js';
import { parseIngestHeaders } from '../../sources/artifacts/ingest-headers.js';
import { InvalidCursorError, StoreConflictError } from '../../store/errors.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, badRequest, conflict, notFound, unauthorized } from '../errors.js';
import { errors, OidParams, Uuid } from '../schemas.js';
import { iso, isoOrNull } from '../views.js';
import { MAX_TIME_S } from './insight.js';

/** Largest body of one POST /ingest: a part of a multi-part upload (parts are 15 MiB) with room to spare. */
export const INGEST_BODY_LIMIT = 16 * 1024 * 1024;

const KeyName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x20-\\x7e]+$', description: 'Name of the ingestion key' });

const IngestionKeySchema = Type.Object({
  key_id: Type.String(), oid: Type.String(), name: Type.String(),
  created: Type.String({ format: 'date-time' }), created_ts: Type.Integer(),
}, { title: 'IngestionKey' });

const ArtifactSchema = Type.Object({
  log_id: Type.String(), oid: Type.String(), payload_id: Type.String(), log_type: Type.String(), source: Type.String(),
  original_path: Type.String(), size: Type.Integer(), md5: Type.String(), sha256: Type.String(),
  created: Type.String({ format: 'date-time' }), created_ts: Type.Integer(),
  expires: Type.String({ format: 'date-time' }), expires_ts: Type.Integer(),
}, { title: 'Artifact' });

const ExportSchema = Type.Object({
  export_id: Type.String(), oid: Type.String(), log_ids: Type.Array(Type.String()),
  state: Type.Enum(['pending', 'ready', 'failed']), size: Type.Integer({ description: 'Size of the package, bytes (0 until ready)' }),
  error: Type.Union([Type.String(), Type.Null()]),
  created: Type.String({ format: 'date-time' }), created_ts: Type.Integer(),
  completed: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]), completed_ts: Type.Union([Type.Integer(), Type.Null()]),
}, { title: 'ArtifactExport' });

function keyView(k: IngestionKeyRecord) {
  return { key_id: k.key_id, oid: k.oid, name: k.name, created: iso(k.created), created_ts: k.created };
}

function artifactView(a: ArtifactRecord) {
  return {
    log_id: a.log_id, oid: a.oid, payload_id: a.payload_id, log_type: a.log_type, source: a.source, original_path: a.original_path,
    size: a.size, md5: a.md5, sha256: a.sha256, created: iso(a.created), created_ts: a.created, expires: iso(a.expires), expires_ts: a.expires,
  };
}

function exportView(e: ArtifactExportRecord) {
  return {
    export_id: e.export_id, oid: e.oid, log_ids: e.log_ids, state: e.state, size: e.size, error: e.error,
    created: iso(e.created), created_ts: e.created, completed: isoOrNull(e.completed), completed_ts: e.completed,
  };
}

/** The organization an upload's Basic credentials (oid : "<key_id>.<secret>") prove; 401 otherwise. */
async function authenticateUpload(ctx: ApiContext, request: FastifyRequest): Promise<string> {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(request.headers.authorization ?? '');
  if (!match) throw unauthorized('missing ingestion key: send "Authorization: Basic base64(<oid>:<ingestion key>)"');
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const oid = decoded.slice(0, colon).toLowerCase();
  const token = colon >= 0 ? parseToken(decoded.slice(colon + 1)) : null;
  const key = token && isUuid(oid) ? await ctx.store.getIngestionKey(token.id) : null;
  if (!token || !key || key.oid !== oid || !verifySecret(token.secret, key.secret_hash)) throw unauthorized('invalid ingestion key');
  return oid;
}

async function loadArtifact(ctx: ApiContext, oid: string, logId: string): Promise<ArtifactRecord> {
  const a = isUuid(logId) ? await ctx.store.getArtifact(oid, logId.toLowerCase()) : null;
  if (!a) throw notFound(`artifact ${logId} not found`);
  return a;
}

export function registerArtifactRoutes(app: ApiApp, ctx: ApiContext, artifacts: ArtifactService): void {
  const base = '/v1/insight/:oid';

  app.get(`${base}/ingestion_keys`, {
    schema: { tags: ['artifacts'], summary: 'Ingestion keys of the organization (never their secrets)', params: OidParams, response: { 200: Type.Object({ keys: Type.Array(IngestionKeySchema) }), ...errors } },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    return { keys: (await ctx.store.listIngestionKeys(key.oid)).map(keyView) };
  });

  app.post(`${base}/ingestion_keys`, {
    schema: {
      tags: ['artifacts'],
      summary: 'Create an ingestion key; the key itself ("<key_id>.<secret>", the Basic password of POST /ingest) is in the response only',
      params: OidParams,
      body: Type.Object({ name: KeyName }),
      response: { 201: Type.Object({ ...IngestionKeySchema.properties, key: Type.String() }), ...errors },
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    const name = request.body.name.trim();
    if (name === '') throw badRequest('body field "name" must not be blank', 'name');
    const token = newToken();
    const record: IngestionKeyRecord = { key_id: token.id, oid: key.oid, name, secret_hash: token.hash, created: ctx.now() };
    await ctx.store.createIngestionKey(record).catch((err: unknown) => {
      throw err instanceof StoreConflictError ? conflict(`an ingestion key named "${name}" exists`) : err;
    });
    ctx.logger.info({ oid: key.oid, key_id: token.id, name, by: key.key_id }, 'ingestion key created');
    return reply.code(201).send({ ...keyView(record), key: token.token });
  });

  app.delete(`${base}/ingestion_keys`, {
    schema: {
      tags: ['artifacts'], summary: 'Delete an ingestion key by name (body or query)', params: OidParams,
      querystring: Type.Object({ name: Type.Optional(KeyName) }),
      body: Type.Union([Type.Object({ name: Type.Optional(KeyName) }), Type.Null()]),
      response: { 200: Type.Object({ deleted: Type.Boolean(), name: Type.String() }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const name = request.body?.name ?? request.query.name;
    if (name === undefined) throw badRequest('body field or query parameter "name" is required', 'name');
    if (!(await ctx.store.deleteIngestionKey(key.oid, name))) throw notFound(`ingestion key "${name}" not found`);
    return { deleted: true, name };
  });

  // Uploads take raw bytes of any content type: their own parser, in their own scope.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: INGEST_BODY_LIMIT }, (_request, body, done) => done(null, body));
    scope.post('/ingest', {
      bodyLimit: INGEST_BODY_LIMIT,
      config: { public: true },
      schema: {
        tags: ['artifacts'],
        summary: 'Upload an artifact (HTTP Basic: oid : ingestion key); raw bytes, lc-* headers; parts of up to 16 MiB',
        response: {
          200: Type.Object({
            status: Type.Enum(['stored', 'duplicate', 'part_received', 'part_duplicate']),
            payload_id: Type.String(),
            log_id: Type.Optional(Type.String()),
            part: Type.Optional(Type.Integer()),
            size: Type.Optional(Type.Integer()),
            md5: Type.Optional(Type.String()),
          }),
          ...errors,
        },
      },
    }, async (request: FastifyRequest, reply: FastifyReply) => {
      const oid = await authenticateUpload(ctx, request);
      const h = parseIngestHeaders(request.headers, artifacts.defaultRetentionDays);
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const outcome = await artifacts.ingest.receive(oid, h, body);
      switch (outcome.kind) {
        case 'stored':
        case 'duplicate':
          return reply.send({ status: outcome.kind, payload_id: h.payloadId, log_id: outcome.artifact.log_id, size: outcome.artifact.size, md5: outcome.artifact.md5 });
        case 'part':
          return reply.send({ status: outcome.duplicate ? 'part_duplicate' : 'part_received', payload_id: h.payloadId, part: outcome.part });
        case 'incomplete':
          throw conflict(`upload ${h.payloadId} is missing part(s) ${outcome.missing.join(', ')}: send them, then "done" again`);
        case 'too_large':
          throw new ApiError(413, 'PAYLOAD_TOO_LARGE', `artifact of ${outcome.size} bytes is over the limit of ${ctx.config.artifactMaxBytes} bytes`);
      }
    });
  });

  app.get(`${base}/artifacts`, {
    schema: {
      tags: ['artifacts'],
      summary: "The organization's artifacts uploaded between start and end (Unix seconds, inclusive), oldest first, a page at a time",
      params: OidParams,
      querystring: Type.Object({
        start: Type.Integer({ minimum: 0, maximum: MAX_TIME_S, default: 0 }),
        end: Type.Integer({ minimum: 0, maximum: MAX_TIME_S, default: MAX_TIME_S }),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        cursor: Type.Optional(Type.String({ maxLength: 1024 })),
        source: Type.Optional(Type.String({ maxLength: 256, description: 'Only artifacts of this source (e.g. a sid)' })),
        sid: Type.Optional(Type.String({ maxLength: 64, description: 'Same as source, for a sensor' })),
      }),
      response: { 200: Type.Object({ artifacts: Type.Array(ArtifactSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const q = request.query;
    if (q.start > q.end) throw badRequest(`query parameter "start" (${q.start}) must not be after "end" (${q.end})`, 'start');
    const cursor = q.cursor === undefined || q.cursor === '' || q.cursor === '-' ? undefined : q.cursor;
    const source = q.source ?? q.sid;
    try {
      const page = await ctx.store.listArtifacts({ oid: key.oid, start: q.start * 1000, end: q.end * 1000 + 999, limit: q.limit, ...(cursor ? { cursor } : {}), ...(source ? { source } : {}) });
      return { artifacts: page.artifacts.map(artifactView), next_cursor: page.nextCursor };
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new ApiError(400, 'INVALID_CURSOR', 'query parameter "cursor" is not a cursor this API returned for this query', 'cursor');
      throw err;
    }
  });

  app.get(`${base}/artifacts/:log_id`, {
    schema: {
      tags: ['artifacts'],
      summary: 'Download an artifact: its original bytes, with its MD5 (Content-MD5, base64; x-picket-md5, hex)',
      params: Type.Object({ oid: Uuid('Organization id'), log_id: Uuid('Artifact id') }),
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    const a = await loadArtifact(ctx, key.oid, request.params.log_id);
    const name = a.original_path.split(/[\\/]/).pop() || a.log_id;
    return reply
      .type('application/octet-stream')
      .header('content-length', a.size)
      .header('content-md5', Buffer.from(a.md5, 'hex').toString('base64'))
      .header('x-picket-md5', a.md5)
      .header('content-disposition', `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}"`)
      .send(artifacts.content.open(a.sha256));
  });

  app.post(`${base}/artifacts/export`, {
    schema: {
      tags: ['artifacts'],
      summary: 'Package artifacts as a tar.gz in the background; answers at once with the export_id (export_complete is emitted when ready)',
      params: OidParams,
      body: Type.Object({ log_ids: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: MAX_EXPORT_ARTIFACTS }) }),
      response: { 202: ExportSchema, ...errors },
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    const ids = request.body.log_ids.map((id) => id.toLowerCase());
    for (const id of ids) if (!isUuid(id)) throw notFound(`artifact ${id} not found`);
    const result = await artifacts.exports.request(key.oid, ids);
    if ('missing' in result) throw notFound(`artifact ${result.missing} not found`);
    return reply.code(202).send(exportView(result.export));
  });

  app.get(`${base}/artifacts/exports/:export_id`, {
    schema: {
      tags: ['artifacts'],
      summary: 'Download an export package (application/gzip); 409 while it is being packaged; ?status=true answers its state as JSON',
      params: Type.Object({ oid: Uuid('Organization id'), export_id: Uuid('Export id') }),
      querystring: Type.Object({ status: Type.Boolean({ default: false }) }),
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    const e = isUuid(request.params.export_id) ? await ctx.store.getArtifactExport(key.oid, request.params.export_id.toLowerCase()) : null;
    if (!e) throw notFound(`export ${request.params.export_id} not found`);
    if (request.query.status) return reply.send(exportView(e));
    if (e.state === 'pending') throw new ApiError(409, 'NOT_READY', `export ${e.export_id} is still being packaged`);
    if (e.state === 'failed') throw conflict(`export ${e.export_id} failed: ${e.error ?? 'unknown error'}`);
    return reply
      .type('application/gzip')
      .header('content-length', e.size)
      .header('content-disposition', `attachment; filename="${e.export_id}.tar.gz"`)
      .send(createReadStream(artifacts.content.exportPath(e.export_id)));
  });
}
