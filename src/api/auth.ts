// API authentication and authorization. Requests carry `Authorization: Bearer <key_id>.<secret>`; the key
// is looked up by id and the secret checked against its stored hash. Roles:
//   read  - GET (and HEAD) only, in the key's own organization;
//   admin - everything in the key's own organization;
//   root  - admin of its own organization, and may create organizations and list all of them.
// No role reaches another organization's data: {oid} paths of another org answer 403, {sid} paths of a
// sensor in another org answer 404 (its existence is not revealed).
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiKeyRecord, SensorRecord } from '../domain/records.js';
import { isUuid } from '../domain/ids.js';
import { parseToken, verifySecret } from '../services/secrets.js';
import type { Store } from '../store/store.js';
import type { ApiContext } from './context.js';
import { forbidden, notFound, unauthorized } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key that authenticated this request (null on public routes). */
    principal: ApiKeyRecord | null;
  }
  interface FastifyContextConfig {
    /** Route needs no API key (health, metrics, docs, the org URL lookup). */
    public?: boolean;
    /** A POST that changes nothing (a live stream): allowed to read-only keys. */
    readOnly?: boolean;
  }
}

interface CachedKey {
  key: ApiKeyRecord;
  until: number;
}

/**
 * Verified keys, remembered briefly so a busy client does not cost a store read and a hash per request.
 * Entries are keyed by a hash of the whole token (a wrong secret never hits the cache) and dropped as
 * soon as the key is deleted through this node.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, CachedKey>();

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 10_000,
  ) {}

  /** The key a bearer token names when its secret is right; null otherwise. */
  async verify(token: string): Promise<ApiKeyRecord | null> {
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const hit = this.entries.get(cacheKey);
    const t = this.now();
    if (hit && hit.until > t) return hit.key;
    if (hit) this.entries.delete(cacheKey);
    const parsed = parseToken(token);
    if (!parsed) return null;
    const key = await this.store.getApiKey(parsed.id);
    if (!key || !verifySecret(parsed.secret, key.secret_hash)) return null;
    if (this.ttlMs > 0) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(cacheKey, { key, until: t + this.ttlMs });
    }
    return key;
  }

  /** Forgets a deleted key at once. */
  forget(keyId: string): void {
    for (const [k, v] of this.entries) if (v.key.key_id === keyId) this.entries.delete(k);
  }
}

/** Any request of a protected route (whatever its schema types). */
export type Authenticated = Pick<FastifyRequest, 'principal'>;

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** onRequest hook of every non-public /v1 route. */
export function authenticate(ctx: ApiContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (!header) throw unauthorized('missing API key: send "Authorization: Bearer <key_id>.<secret>"');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized('malformed Authorization header: expected "Bearer <key_id>.<secret>"');
    const key = await ctx.keys.verify(match[1]!);
    if (!key) throw unauthorized('invalid API key');
    const readOnlyRoute = request.routeOptions.config?.readOnly === true;
    if (key.role === 'read' && !READ_METHODS.has(request.method) && !readOnlyRoute) throw forbidden(`API key "${key.name}" has the read role: only GET requests are allowed`);
    request.principal = key;
  };
}

/** The authenticated key of a protected route. */
export function principalOf(request: Authenticated): ApiKeyRecord {
  const key = request.principal;
  if (!key) throw unauthorized('missing API key');
  return key;
}

/** 403 unless the request's key belongs to organization `oid`. */
export function requireOrg(request: Authenticated, oid: string): ApiKeyRecord {
  const key = principalOf(request);
  if (key.oid !== oid.toLowerCase()) throw forbidden(`this API key has no access to organization ${oid}`);
  return key;
}

export function requireRoot(request: Authenticated, action: string): ApiKeyRecord {
  const key = principalOf(request);
  if (key.role !== 'root') throw forbidden(`only a root API key may ${action}`);
  return key;
}

/** The sensor `sid` of the request's organization; 404 when it does not exist or belongs to another org. */
export async function loadSensor(ctx: ApiContext, request: Authenticated, sid: string): Promise<SensorRecord> {
  const key = principalOf(request);
  const sensor = isUuid(sid) ? await ctx.store.getSensor(sid.toLowerCase()) : null;
  if (!sensor || sensor.oid !== key.oid) throw notFound(`sensor ${sid} not found`);
  return sensor;
}
