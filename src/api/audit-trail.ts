// The audit stream (decisions.md §2): every mutating API call — successful or not — becomes an `audit`
// event {oid, ts, etype, msg, ident, origin, entity, mtd, error?} of the organization acted on, stored and
// routed like any other event (outputs with type "audit" receive it). Secrets never enter the record:
// only route parameters and a few identifying fields of the query string and body (name, hostname, module,
// type, ...) are kept.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditPayload } from '../catalogue/platform-events.js';
import { organizationEnvelope } from '../pipeline/envelope.js';
import type { ApiContext } from './context.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Body fields that name what was acted on; everything else (keys, secrets, module fields) stays out. */
const ENTITY_BODY_FIELDS = ['name', 'hostname', 'module', 'type', 'iid', 'key_id', 'tags', 'tag', 'investigation_id'] as const;

/** The kind of action, from the route: POST /v1/outputs/:oid → "outputs_set", DELETE /v1/:sid → "sensor_delete". */
export function auditEtype(method: string, route: string): string {
  const parts = route.replace(/^\/v1\/?/, '').split('/').filter((p) => p !== '' && !p.startsWith(':'));
  const subject = route === '/v1/:sid' || route.startsWith('/v1/:sid/') ? ['sensor', ...parts] : parts;
  const verb = method === 'DELETE' ? 'delete' : method === 'POST' && route === '/v1/:sid' ? 'task' : 'set';
  return [...subject, verb].join('_').replace(/[^a-z0-9_]/gi, '_').toLowerCase();
}

/**
 * An `onSend` hook: the record is stored before the answer leaves, so a caller that has its answer can
 * read the audit record of its call (and a crash after answering cannot lose it).
 */
export function auditHook(ctx: ApiContext) {
  return async <T>(request: FastifyRequest, reply: FastifyReply, payload: T): Promise<T> => {
    await recordAudit(ctx, request, reply);
    return payload;
  };
}

async function recordAudit(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!MUTATING.has(request.method)) return;
  const config = request.routeOptions.config;
  if (config?.public || config?.readOnly) return;
  const key = request.principal;
  if (!key) return; // unauthenticated calls changed nothing and name no organization
  const params = (request.params ?? {}) as Record<string, unknown>;
  // The organization acted on; a call refused for lack of access is recorded in the caller's own organization.
  const target = typeof params.oid === 'string' ? params.oid.toLowerCase() : key.oid;
  const oid = target === key.oid || key.role === 'root' ? target : key.oid;
  const route = request.routeOptions.url ?? request.url;
  const etype = auditEtype(request.method, route);
  const status = reply.statusCode;
  const entity: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) if (k !== 'oid') entity[k] = v;
  // The same identifying fields from the query string (DELETE /v1/outputs/{oid}?name=x) and the body.
  for (const source of [request.query, request.body]) {
    if (typeof source !== 'object' || source === null) continue;
    for (const field of ENTITY_BODY_FIELDS) {
      const v = (source as Record<string, unknown>)[field];
      if (v !== undefined && (typeof v === 'string' || typeof v === 'number' || Array.isArray(v))) entity[field] = v;
    }
  }
  const now = ctx.now();
  const payload: AuditPayload = {
    oid,
    ts: Math.floor(now / 1000),
    etype,
    msg: `${request.method} ${route} by API key "${key.name}": ${status}`,
    ident: `${key.name} (${key.key_id})`,
    origin: request.ip,
    entity,
    mtd: { method: request.method, route, status, req_id: request.id },
    ...(status >= 400 ? { error: `HTTP ${status}` } : {}),
  };
  const { json, event_id, event_time } = organizationEnvelope({ oid, event_type: 'audit', event_time: now }, payload);
  try {
    await ctx.emit([{ oid, sid: null, event_type: 'audit', event_time, event_id, stream: 'audit', json }]);
  } catch (err) {
    ctx.logger.error({ err, oid, etype }, 'could not store an audit record');
  }
}
