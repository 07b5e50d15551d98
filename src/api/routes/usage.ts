// Usage (docs/schedule-and-billing.md): GET /v1/usage/{oid} returns the organization's metered usage per
// billing period — the numbers its billing_record events carry — including the period under way.
import { Type } from 'typebox';
import type { UsageReport } from '../../services/usage-report.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { errors, OidParams } from '../schemas.js';

const DAY_S = 86_400;

const UsageQuery = Type.Object({
  start: Type.Optional(Type.Integer({ minimum: 0, description: 'Earliest period to include, Unix seconds (default: 24 hours ago)' })),
  end: Type.Optional(Type.Integer({ minimum: 0, description: 'Latest period to include, Unix seconds (default: now)' })),
});

const UsageResponse = Type.Object({
  oid: Type.String(),
  period_s: Type.Integer({ description: 'Length of a billing period, seconds' }),
  periods: Type.Array(
    Type.Object({
      start: Type.Integer({ description: 'Start of the period, Unix seconds' }),
      ts: Type.String({ description: 'Start of the period as billing_record.ts writes it (UTC, YYYY-MM-DD HH:MM:SS)' }),
      current: Type.Boolean({ description: 'The period under way: its numbers still grow' }),
      usage: Type.Array(Type.Object({ cat: Type.String(), k: Type.String(), v: Type.Number() })),
    }),
  ),
});

export function registerUsageRoutes(app: ApiApp, ctx: ApiContext, usage: UsageReport): void {
  app.get('/v1/usage/:oid', {
    schema: {
      tags: ['orgs'],
      summary: 'The organization\'s metered usage per billing period (the amounts of its billing_record events), oldest period first',
      params: OidParams,
      querystring: UsageQuery,
      response: { 200: UsageResponse, ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const nowS = Math.floor(ctx.now() / 1000);
    const end = request.query.end ?? nowS;
    const start = request.query.start ?? end - DAY_S;
    if (start > end) throw badRequest('start must not be after end', 'start');
    const periods = await usage.report(key.oid, start * 1000, end * 1000);
    return { oid: key.oid, period_s: usage.periodMs / 1000, periods };
  });
}
