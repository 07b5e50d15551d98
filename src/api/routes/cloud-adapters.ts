// Cloud adapters (docs/cloud-adapters.md): ingestion sources the cloud runs for an organization. GET lists
// them as {<oid>: {<name>: adapter}} with each one's status and sensor (secrets masked); POST creates or
// replaces one and (re)starts it enabled; DELETE removes one by name; /enable re-enables a disabled one.
// POST /v1/ingest/webhook/{oid}/{name} is where inbound webhooks post: no API key, the adapter's secret.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import { CloudAdapterDefinitionError } from '../../services/cloud-adapter-control.js';
import { cloudAdapterSid } from '../../sources/cloud-adapters/adapter-sensor.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, badRequest, conflict, notFound, unauthorized } from '../errors.js';
import { errors, OidParams } from '../schemas.js';

const AnyFields = Type.Object({}, { additionalProperties: true, description: 'name, type, platform, hostname, mapping, grace_period and the type\'s settings' });
const Name = Type.String({ minLength: 1, maxLength: 64 });
const NameParams = Type.Object({ oid: OidParams.properties.oid, name: Name });
const AdapterView = Type.Record(Type.String(), Type.Unknown());

const component = (name: string): string => `cloud_adapters/${name}`;
const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** The secret of a webhook post: the `x-picket-secret` header, else the password of basic auth. */
function webhookSecret(headers: Record<string, string | string[] | undefined>): string | undefined {
  const header = headers['x-picket-secret'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = headers.authorization;
  const basic = typeof auth === 'string' ? /^Basic\s+(\S+)\s*$/i.exec(auth) : null;
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

export function registerCloudAdapterRoutes(app: ApiApp, ctx: ApiContext): void {
  const adapters = ctx.cloudAdapters;

  function withStatus(config: CloudAdapterConfig): Record<string, unknown> {
    const s = adapters.status(config.oid, config.name);
    // The stored configuration is the truth about "disabled": a runner may still be winding down for a moment
    // after the store marked it disabled, and must not show as retrying meanwhile.
    return {
      ...adapters.view(config),
      sid: cloudAdapterSid(config.oid, config.name),
      status: s && config.enabled
        ? { state: s.state, failures: s.failures, failing_since: iso(s.failing_since), last_error: s.last_error, last_error_at: iso(s.last_error_at), events: s.events }
        : { state: config.enabled ? 'stopped' : 'disabled', failures: s?.failures ?? 0, failing_since: null, last_error: config.disabled_error, last_error_at: iso(config.disabled_at), events: s?.events ?? 0 },
    };
  }

  app.get('/v1/cloud_adapters/:oid', {
    schema: {
      tags: ['cloud adapters'],
      summary: 'The organization\'s cloud adapters, as {<oid>: {<name>: adapter}}, each with its sensor and status (secrets masked)',
      params: OidParams,
      response: { 200: Type.Record(Type.String(), Type.Record(Type.String(), AdapterView)), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const list = await ctx.store.listCloudAdapters(key.oid);
    return { [key.oid]: Object.fromEntries(list.map((c) => [c.name, withStatus(c)])) };
  });

  app.post('/v1/cloud_adapters/:oid', {
    schema: {
      tags: ['cloud adapters'],
      summary: 'Create or replace a cloud adapter; it starts enabled (a replaced poller keeps its cursor)',
      params: OidParams,
      body: AnyFields,
      response: { 200: AdapterView, ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    let definition;
    try {
      definition = adapters.parse(request.body as Record<string, unknown>);
    } catch (err) {
      if (err instanceof CloudAdapterDefinitionError) throw badRequest(err.message, err.field);
      throw err;
    }
    const now = ctx.now();
    const { created } = await ctx.store.putCloudAdapter({ ...definition, oid: key.oid, enabled: true, disabled_at: null, disabled_error: null, created: now, updated: now });
    const stored = (await ctx.store.getCloudAdapter(key.oid, definition.name))!;
    await ctx.store.clearOrgError(key.oid, component(stored.name));
    await adapters.apply(stored);
    ctx.logger.info({ oid: key.oid, cloud_adapter: stored.name, type: stored.type, created }, created ? 'cloud adapter created' : 'cloud adapter updated');
    return withStatus(stored);
  });

  app.delete('/v1/cloud_adapters/:oid', {
    schema: {
      tags: ['cloud adapters'],
      summary: 'Delete a cloud adapter by name (JSON or form field "name", or query ?name=); its sensor and events stay',
      params: OidParams,
      querystring: Type.Object({ name: Type.Optional(Name) }),
      response: { 200: Type.Object({ deleted: Type.Boolean(), name: Type.String() }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const fromBody = (request.body as { name?: unknown } | null | undefined)?.name;
    const name = typeof fromBody === 'string' && fromBody !== '' ? fromBody : request.query.name;
    if (!name) throw badRequest('field "name" is required: the cloud adapter to delete', 'name');
    await adapters.remove(key.oid, name);
    if (!(await ctx.store.deleteCloudAdapter(key.oid, name))) throw notFound(`cloud adapter "${name}" not found`);
    ctx.logger.info({ oid: key.oid, cloud_adapter: name }, 'cloud adapter deleted');
    return { deleted: true, name };
  });

  app.post('/v1/cloud_adapters/:oid/:name/enable', {
    schema: {
      tags: ['cloud adapters'],
      summary: 'Enable a cloud adapter again (after it was disabled for failing too long): it restarts at once',
      params: NameParams,
      response: { 200: AdapterView, ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const { name } = request.params;
    if (!(await ctx.store.enableCloudAdapter(key.oid, name, ctx.now()))) throw notFound(`cloud adapter "${name}" not found`);
    const stored = (await ctx.store.getCloudAdapter(key.oid, name))!;
    await ctx.store.clearOrgError(key.oid, component(name));
    await adapters.apply(stored);
    ctx.logger.info({ oid: key.oid, cloud_adapter: name }, 'cloud adapter enabled');
    return withStatus(stored);
  });

  // Webhook bodies are read raw (JSON, a JSON array or NDJSON, whatever the content type says).
  void app.register(async (plugin) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    scope.post('/v1/ingest/webhook/:oid/:name', {
      config: { public: true },
      schema: {
        tags: ['cloud adapters'],
        summary: 'Inbound webhook of a cloud adapter: a JSON object, a JSON array of objects or NDJSON; authenticated with the adapter\'s secret',
        description: 'Send the secret in `x-picket-secret`, or as the password of HTTP basic auth. Every record of a post is stored, or none (400).',
        params: NameParams,
        response: { 200: Type.Object({ accepted: Type.Integer() }), ...errors },
      },
    }, async (request) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const outcome = await adapters.receiveWebhook({
        oid: request.params.oid, name: request.params.name, secret: webhookSecret(request.headers), contentType: request.headers['content-type'], body,
      });
      switch (outcome.status) {
        case 'accepted':
          return { accepted: outcome.events };
        case 'unauthorized':
          throw unauthorized('unknown webhook or wrong secret');
        case 'disabled':
          throw conflict(`cloud adapter "${request.params.name}" is disabled; enable it with POST /v1/cloud_adapters/{oid}/{name}/enable`);
        case 'unavailable':
          throw new ApiError(503, 'NOT_READY', 'the webhook is starting; retry shortly');
        case 'invalid':
          throw new ApiError(400, 'INVALID_BODY', outcome.error);
      }
    });
  });
}
