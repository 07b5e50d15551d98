// The REST API: one fastify instance with TypeBox schemas on every route (validation, serialisation and
// the OpenAPI document at /openapi.json, browsable at /docs), API-key auth on every /v1 route except the
// public URL lookup, JSON errors everywhere, structured request logs and request metrics.
import formbody from '@fastify/formbody';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { PICKET_VERSION } from '../version.js';
import { ApiKeyCache, authenticate } from './auth.js';
import type { ApiApp, ApiContext, ApiOptions } from './context.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerDeploymentRoutes } from './routes/deployment.js';
import { registerTaskRoutes } from './routes/tasks.js';
import { registerInsightRoutes } from './routes/insight.js';
import { registerInstallationKeyRoutes } from './routes/installation-keys.js';
import { registerOrgRoutes } from './routes/orgs.js';
import { registerOutputRoutes } from './routes/outputs.js';
import { registerUsageRoutes } from './routes/usage.js';
import { registerCloudAdapterRoutes } from './routes/cloud-adapters.js';
import { registerArtifactRoutes } from './routes/artifacts.js';
import { registerLiveStreamRoutes } from './routes/live-stream.js';
import { liveStreamUpgradeHandler } from './live-stream-socket.js';
import { auditHook } from './audit-trail.js';
import { registerSensorRoutes } from './routes/sensors.js';
import { ErrorResponse } from './schemas.js';

export type { ApiApp, ApiOptions } from './context.js';

export const DEFAULT_BODY_LIMIT = 1_048_576;

export async function buildApi(options: ApiOptions): Promise<ApiApp> {
  const now = options.now ?? Date.now;
  const common: FastifyServerOptions = {
    loggerInstance: options.logger,
    // Fastify's own per-request lines are replaced by one structured line per request (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Shutdown runs after sessions, outputs and live streams are closed: whatever connection is left is cut.
    forceCloseConnections: true,
    ajv: { customOptions: { coerceTypes: 'array', useDefaults: true, removeAdditional: true, allErrors: false } },
  };
  // With `https` fastify creates an https.Server; its API is the one used here, so the instance is typed as the default.
  const app = Fastify({ ...common, ...(options.https ? { https: options.https } : {}) } as FastifyServerOptions).withTypeProvider<TypeBoxTypeProvider>();

  const ctx: ApiContext = {
    store: options.store,
    presence: options.presence,
    metrics: options.metrics,
    logger: options.logger,
    config: options.config,
    emit: options.emit,
    tasking: options.tasking,
    outputs: options.outputs,
    cloudAdapters: options.cloudAdapters,
    live: options.live,
    readiness: options.readiness,
    keys: new ApiKeyCache(options.store, options.keyCacheMs ?? 5000, now),
    now,
    scheme: options.https ? 'https' : 'http',
  };

  // Bodies are JSON or form-encoded (registered below); anything else, plain text included, is 415.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null);
  app.setErrorHandler(errorHandler(options.logger));
  app.setNotFoundHandler(notFoundHandler);
  app.addSchema(ErrorResponse);

  // Every /v1 route needs an API key unless it is marked public; the OpenAPI document says so.
  const auth = authenticate(ctx);
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1/') || route.config?.public) return;
    const existing = route.onRequest ? (Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]) : [];
    route.onRequest = [auth, ...existing] as typeof route.onRequest;
    route.schema = { ...(route.schema ?? {}), security: [{ bearerAuth: [] }] };
  });

  app.addHook('onSend', auditHook(ctx));
  app.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    ctx.metrics.apiRequests.inc({ method: request.method, status: String(status) });
    const fields = {
      method: request.method,
      url: request.url,
      route: request.routeOptions.url,
      status,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      key_id: request.principal?.key_id,
      req_id: request.id,
    };
    if (request.routeOptions.config?.public && status < 400) options.logger.debug(fields, 'api request');
    else options.logger.info(fields, 'api request');
  });

  await app.register(formbody, { bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Picket API',
        version: PICKET_VERSION,
        description:
          'Manage a Picket sensor cloud: organizations, API and installation keys, sensors, tags, online state and event timelines. ' +
          'Authenticate with `Authorization: Bearer <key_id>.<secret>`. Errors are `{error, code, status, field?}`.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key, "<key_id>.<secret>"' } } },
      tags: [
        { name: 'orgs', description: 'Organizations' },
        { name: 'api keys', description: 'API keys of an organization' },
        { name: 'installation keys', description: 'Keys sensors enroll with' },
        { name: 'sensors', description: 'Sensors, tags and online state' },
        { name: 'events', description: 'Sensor timelines' },
        { name: 'outputs', description: 'Where events are delivered, and component errors' },
        { name: 'cloud adapters', description: 'Ingestion sources the cloud runs: inbound webhooks, HTTP pollers, syslog listeners' },
        { name: 'artifacts', description: 'Artifact uploads (POST /ingest), ingestion keys, downloads and exports' },
        { name: 'health', description: 'Probes and metrics (no API key)' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  registerHealthRoutes(app, ctx);
  registerOrgRoutes(app, ctx);
  registerInstallationKeyRoutes(app, ctx);
  registerSensorRoutes(app, ctx);
  registerInsightRoutes(app, ctx);
  registerDeploymentRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerOutputRoutes(app, ctx);
  if (options.usage) registerUsageRoutes(app, ctx, options.usage);
  registerCloudAdapterRoutes(app, ctx);
  if (options.artifacts) registerArtifactRoutes(app, ctx, options.artifacts);
  registerLiveStreamRoutes(app, ctx);
  options.upgrades.add(liveStreamUpgradeHandler(ctx));

  await app.ready();
  return app;
}
