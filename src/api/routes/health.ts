// Probes and metrics, no API key: /healthz (the process runs), /readyz (the node accepts work and the store
// answers), /metrics (Prometheus text format).
import { Type } from 'typebox';
import type { ApiApp, ApiContext } from '../context.js';
import { ErrorResponse } from '../schemas.js';

export function registerHealthRoutes(app: ApiApp, ctx: ApiContext): void {
  app.get('/healthz', {
    config: { public: true },
    schema: {
      tags: ['health'],
      summary: 'Liveness: 200 while the process runs',
      response: { 200: Type.Object({ status: Type.Literal('ok') }) },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: { public: true },
    schema: {
      tags: ['health'],
      summary: 'Readiness: 200 when the node accepts sensors and the store answers, 503 with a reason otherwise',
      response: {
        200: Type.Object({ status: Type.Literal('ready'), store: Type.String() }),
        503: Type.Object({ ...ErrorResponse.properties, reason: Type.String() }),
      },
    },
  }, async (_request, reply) => {
    const r = ctx.readiness();
    let reason: string | null = r.ready ? null : r.reason;
    if (reason === null) {
      try {
        await ctx.store.ping();
      } catch (err) {
        reason = `store unavailable: ${(err as Error).message}`;
      }
    }
    if (reason !== null) return reply.code(503).send({ error: `not ready: ${reason}`, code: 'NOT_READY', status: 503, reason });
    return reply.code(200).send({ status: 'ready' as const, store: ctx.store.description });
  });

  app.get('/metrics', {
    config: { public: true },
    schema: {
      tags: ['health'],
      summary: 'Prometheus metrics of this node (text exposition format)',
      produces: ['text/plain'],
    },
  }, async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(text);
  });
}
