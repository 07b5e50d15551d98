// Outputs (platform-reference.md §4.2): where an organization's events are delivered. GET lists them as
// {<oid>: {<name>: {..., "for": <stream>}}} with each one's delivery status; POST creates or replaces one
// (JSON or form fields, booleans as "true"/"false"); DELETE removes one by name. A test send checks a
// destination without touching the queue. GET /v1/errors/{oid} shows the last error of each component.
import { Type } from 'typebox';
import { OutputDefinitionError } from '../../services/output-control.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { badRequest, notFound } from '../errors.js';
import { errors, OidParams } from '../schemas.js';

const AnyFields = Type.Object({}, { additionalProperties: true, description: 'name, module, type (stream), filters, shape options and the module\'s fields' });
const NameParams = Type.Object({ oid: OidParams.properties.oid, name: Type.String({ minLength: 1, maxLength: 64 }) });

function isoOrNull(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

export function registerOutputRoutes(app: ApiApp, ctx: ApiContext): void {
  const { outputs } = ctx;

  function withStatus(config: Parameters<typeof outputs.view>[0]): Record<string, unknown> {
    const status = outputs.status(config.oid, config.name);
    return {
      ...outputs.view(config),
      status: status
        ? { state: status.state, failures: status.failures, last_error: status.last_error, last_error_at: isoOrNull(status.last_error_at), retry_at: isoOrNull(status.retry_at), cursor: status.cursor }
        : { state: 'stopped', failures: 0, last_error: null, last_error_at: null, retry_at: null, cursor: null },
    };
  }

  app.get('/v1/outputs/:oid', {
    schema: {
      tags: ['outputs'],
      summary: 'The organization\'s outputs, as {<oid>: {<name>: output}}, each with its delivery status (secrets masked)',
      params: OidParams,
      response: { 200: Type.Record(Type.String(), Type.Record(Type.String(), Type.Record(Type.String(), Type.Unknown()))), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const list = await ctx.store.listOutputs(key.oid);
    return { [key.oid]: Object.fromEntries(list.map((c) => [c.name, withStatus(c)])) };
  });

  app.post('/v1/outputs/:oid', {
    schema: {
      tags: ['outputs'],
      summary: 'Create or replace an output (delivery starts with the events stored from now on; a replaced output keeps its place)',
      params: OidParams,
      body: AnyFields,
      response: { 200: Type.Record(Type.String(), Type.Unknown()), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    let definition;
    try {
      definition = outputs.parse(request.body as Record<string, unknown>);
    } catch (err) {
      if (err instanceof OutputDefinitionError) throw badRequest(err.message, err.field);
      throw err;
    }
    const now = ctx.now();
    const config = { ...definition, oid: key.oid, created: now, updated: now };
    const { created } = await ctx.store.putOutput(config);
    const stored = (await ctx.store.getOutput(key.oid, config.name))!;
    await ctx.store.clearOrgError(key.oid, `outputs/${config.name}`);
    await outputs.apply(stored);
    ctx.logger.info({ oid: key.oid, output: config.name, module: config.module, stream: config.stream, created }, created ? 'output created' : 'output updated');
    return withStatus(stored);
  });

  app.delete('/v1/outputs/:oid', {
    schema: {
      tags: ['outputs'],
      summary: 'Delete an output by name (JSON or form field "name", or query ?name=)',
      params: OidParams,
      querystring: Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) }),
      response: { 200: Type.Object({ deleted: Type.Boolean(), name: Type.String() }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    // The name comes in the body (JSON or form, as the platform's clients send it) or in the query.
    const fromBody = (request.body as { name?: unknown } | null | undefined)?.name;
    const name = typeof fromBody === 'string' && fromBody !== '' ? fromBody : request.query.name;
    if (!name) throw badRequest('field "name" is required: the output to delete', 'name');
    await outputs.remove(key.oid, name);
    if (!(await ctx.store.deleteOutput(key.oid, name))) throw notFound(`output "${name}" not found`);
    ctx.logger.info({ oid: key.oid, output: name }, 'output deleted');
    return { deleted: true, name };
  });

  app.post('/v1/outputs/:oid/:name/test', {
    schema: {
      tags: ['outputs'],
      summary: 'Send one test record to the output\'s destination now (outside its queue) and report the destination\'s answer',
      params: NameParams,
      response: { 200: Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const config = await ctx.store.getOutput(key.oid, request.params.name);
    if (!config) throw notFound(`output "${request.params.name}" not found`);
    return outputs.testSend(config);
  });

  app.get('/v1/errors/:oid', {
    schema: {
      tags: ['outputs'],
      summary: 'The last error of each failing component of the organization (e.g. "outputs/<name>")',
      params: OidParams,
      response: {
        200: Type.Object({ errors: Type.Array(Type.Object({ component: Type.String(), error: Type.String(), at: Type.String(), ts: Type.Integer() })) }),
        ...errors,
      },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const list = await ctx.store.listOrgErrors(key.oid);
    return { errors: list.map((e) => ({ component: e.component, error: e.error, at: new Date(e.at).toISOString(), ts: e.at })) };
  });
}
