// Organizations and their API keys: who am I, list/create/read organizations, the URLs sensors and
// clients use, and API key management.
import { Type } from 'typebox';
import { newId } from '../../domain/ids.js';
import type { ApiKeyRole, Org } from '../../domain/records.js';
import { newToken } from '../../services/secrets.js';
import type { Store } from '../../store/store.js';
import { principalOf, requireOrg, requireRoot } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { conflict, forbidden, notFound } from '../errors.js';
import { ApiKeySchema, DeletedResponse, errors, OidParams, OrgSchema, QuotaInput, Role, Uuid } from '../schemas.js';
import { apiKeyView, orgView, parseQuota } from '../views.js';

const Name = (what: string) => Type.String({ minLength: 1, maxLength: 128, pattern: '\\S', description: what });

/** Sensors of an org (not deleted), counted by paging through the store. */
async function countSensors(store: Store, oid: string): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await store.listSensors(oid, { limit: 5000, cursor });
    count += page.sensors.length;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return count;
}

/** Base URL of this API as clients reach it: the configured public URL, else scheme + Host header. */
export function publicBaseUrl(ctx: ApiContext, host: string | undefined): string {
  if (ctx.config.publicUrl) return ctx.config.publicUrl.replace(/\/+$/, '');
  return `${ctx.scheme}://${host ?? `${ctx.config.host}:${ctx.config.port}`}`;
}

export function registerOrgRoutes(app: ApiApp, ctx: ApiContext): void {
  app.get('/v1/whoami', {
    schema: {
      tags: ['orgs'],
      summary: 'The API key making the request: its id, name, role and organization',
      response: { 200: Type.Object({ key_id: Type.String(), name: Type.String(), role: Role, oid: Type.String() }), ...errors },
    },
  }, async (request) => {
    const key = principalOf(request);
    return { key_id: key.key_id, name: key.name, role: key.role, oid: key.oid };
  });

  app.get('/v1/orgs', {
    schema: {
      tags: ['orgs'],
      summary: 'Organizations visible to the key: its own; a root key sees every organization',
      response: { 200: Type.Object({ orgs: Type.Array(OrgSchema) }), ...errors },
    },
  }, async (request) => {
    const key = principalOf(request);
    if (key.role === 'root') return { orgs: (await ctx.store.listOrgs()).map((o) => orgView(o)) };
    const org = await ctx.store.getOrg(key.oid);
    return { orgs: org ? [orgView(org)] : [] };
  });

  app.post('/v1/orgs', {
    schema: {
      tags: ['orgs'],
      summary: 'Create an organization (root keys only); returns its first admin API key and installation key, shown once',
      body: Type.Object({
        name: Name('Organization name, unique (case-insensitive)'),
        quota: Type.Optional(QuotaInput),
      }),
      response: {
        201: Type.Object({
          ...OrgSchema.properties,
          api_key: Type.String({ description: 'Admin API key of the new organization, "<key_id>.<secret>"; shown only now' }),
          key_id: Type.String(),
          installation_key: Type.String({ description: 'Installation key, "<iid>.<secret>"; shown only now' }),
          iid: Type.String(),
        }),
        ...errors,
      },
    },
  }, async (request, reply) => {
    requireRoot(request, 'create organizations');
    const name = request.body.name.trim();
    const existing = await ctx.store.listOrgs();
    if (existing.some((o) => o.name.toLowerCase() === name.toLowerCase())) throw conflict(`an organization named "${name}" already exists`);
    const now = ctx.now();
    const org: Org = { oid: newId(), name, quota: request.body.quota === undefined ? null : parseQuota(request.body.quota, 'quota'), created: now };
    await ctx.store.createOrg(org);
    const api = newToken();
    await ctx.store.createApiKey({ key_id: api.id, oid: org.oid, name: 'admin', role: 'admin', secret_hash: api.hash, created: now });
    const inst = newToken();
    await ctx.store.createInstallationKey({ iid: inst.id, oid: org.oid, desc: 'default installation key', tags: [], secret_hash: inst.hash, created: now });
    ctx.logger.info({ oid: org.oid, name, by: principalOf(request).key_id }, 'organization created');
    return reply.code(201).send({ ...orgView(org), api_key: api.token, key_id: api.id, installation_key: inst.token, iid: inst.id });
  });

  app.get('/v1/orgs/:oid', {
    schema: {
      tags: ['orgs'],
      summary: 'One organization, with its number of sensors and how many are online',
      params: OidParams,
      response: { 200: OrgSchema, ...errors },
    },
  }, async (request) => {
    const { oid } = request.params;
    requireOrg(request, oid);
    const org = await ctx.store.getOrg(oid.toLowerCase());
    if (!org) throw notFound(`organization ${oid} not found`);
    return orgView(org, { sensors: await countSensors(ctx.store, org.oid), online: ctx.presence.onlineCount(org.oid) });
  });

  app.get('/v1/orgs/:oid/url', {
    config: { public: true },
    schema: {
      tags: ['orgs'],
      summary: 'URLs of this cloud for sensors and API clients (no API key needed)',
      params: OidParams,
      response: {
        200: Type.Object({
          url: Type.Object({
            api: Type.String({ description: 'Base URL of the REST API' }),
            sensor: Type.String({ description: 'WebSocket URL sensors connect to' }),
          }),
        }),
        ...errors,
      },
    },
  }, async (request) => {
    const base = publicBaseUrl(ctx, request.headers.host);
    return { url: { api: base, sensor: `${base.replace(/^http/, 'ws')}/sensor` } };
  });

  app.get('/v1/orgs/:oid/keys', {
    schema: {
      tags: ['api keys'],
      summary: 'API keys of the organization (never their secrets)',
      params: OidParams,
      response: { 200: Type.Object({ keys: Type.Array(ApiKeySchema) }), ...errors },
    },
  }, async (request) => {
    const { oid } = request.params;
    const key = requireOrg(request, oid);
    return { keys: (await ctx.store.listApiKeys(key.oid)).map(apiKeyView) };
  });

  app.post('/v1/orgs/:oid/keys', {
    schema: {
      tags: ['api keys'],
      summary: 'Create an API key; the token is in the response only',
      params: OidParams,
      body: Type.Object({
        name: Name('A name to recognise the key by'),
        role: Type.Optional(Role),
      }),
      response: { 201: Type.Object({ ...ApiKeySchema.properties, key: Type.String({ description: '"<key_id>.<secret>": shown only now' }) }), ...errors },
    },
  }, async (request, reply) => {
    const { oid } = request.params;
    const key = requireOrg(request, oid);
    const role: ApiKeyRole = request.body.role ?? 'read';
    if (role === 'root' && key.role !== 'root') throw forbidden('only a root API key may create root API keys');
    const token = newToken();
    const record = { key_id: token.id, oid: key.oid, name: request.body.name.trim(), role, secret_hash: token.hash, created: ctx.now() };
    await ctx.store.createApiKey(record);
    ctx.logger.info({ oid: key.oid, key_id: record.key_id, role, by: key.key_id }, 'API key created');
    return reply.code(201).send({ ...apiKeyView(record), key: token.token });
  });

  app.delete('/v1/orgs/:oid/keys/:key_id', {
    schema: {
      tags: ['api keys'],
      summary: 'Delete an API key; it stops working at once',
      params: Type.Object({ oid: Uuid('Organization id'), key_id: Uuid('API key id') }),
      response: { 200: Type.Object({ ...DeletedResponse.properties, key_id: Type.String() }), ...errors },
    },
  }, async (request) => {
    const { oid, key_id } = request.params;
    const key = requireOrg(request, oid);
    const id = key_id.toLowerCase();
    const target = await ctx.store.getApiKey(id);
    if (!target || target.oid !== key.oid) throw notFound(`API key ${key_id} not found`);
    if (target.role === 'root' && key.role !== 'root') throw forbidden('only a root API key may delete root API keys');
    if (!(await ctx.store.deleteApiKey(key.oid, id))) throw notFound(`API key ${key_id} not found`);
    ctx.keys.forget(id);
    ctx.logger.info({ oid: key.oid, key_id: id, by: key.key_id }, 'API key deleted');
    return { deleted: true, key_id: id };
  });
}
