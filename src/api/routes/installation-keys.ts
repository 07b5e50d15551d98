// Installation keys (platform-reference.md §9 `installationkeys/{oid}`): sensors enroll with them; their
// tags are given to every sensor that enrolls with the key. Deleting one stops new enrollments only.
import { Type } from 'typebox';
import { isUuid, newId } from '../../domain/ids.js';
import { hashSecret, newSecret } from '../../services/secrets.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { badRequest, notFound } from '../errors.js';
import { errors, InstallationKeySchema, OidParams, StringList, Uuid } from '../schemas.js';
import { installationKeyView, parseTags } from '../views.js';

const IidField = Uuid('Installation key id');

export function registerInstallationKeyRoutes(app: ApiApp, ctx: ApiContext): void {
  app.get('/v1/installationkeys/:oid', {
    schema: {
      tags: ['installation keys'],
      summary: 'Installation keys of the organization, as {<oid>: {<iid>: key}} (never their secrets)',
      params: OidParams,
      response: { 200: Type.Record(Type.String(), Type.Record(Type.String(), InstallationKeySchema)), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const keys = await ctx.store.listInstallationKeys(key.oid);
    return { [key.oid]: Object.fromEntries(keys.map((k) => [k.iid, installationKeyView(k)])) };
  });

  app.get('/v1/installationkeys/:oid/:iid', {
    schema: {
      tags: ['installation keys'],
      summary: 'One installation key (never its secret)',
      params: Type.Object({ oid: Uuid('Organization id'), iid: IidField }),
      response: { 200: InstallationKeySchema, ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const iid = request.params.iid.toLowerCase();
    const found = isUuid(iid) ? await ctx.store.getInstallationKey(iid) : null;
    if (!found || found.oid !== key.oid) throw notFound(`installation key ${request.params.iid} not found`);
    return installationKeyView(found);
  });

  app.post('/v1/installationkeys/:oid', {
    schema: {
      tags: ['installation keys'],
      summary: 'Create an installation key; the key itself is in the response only',
      description: 'JSON or form-encoded. `tags` is a list or a comma-separated string. `iid` picks the key id (409 if it exists).',
      params: OidParams,
      body: Type.Object({
        desc: Type.Optional(Type.String({ maxLength: 512, description: 'Description' })),
        tags: Type.Optional(StringList('Tags for sensors enrolling with this key')),
        iid: Type.Optional(IidField),
      }),
      response: {
        201: Type.Object({ ...InstallationKeySchema.properties, key: Type.String({ description: '"<iid>.<secret>": the installation key, shown only now' }) }),
        ...errors,
      },
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    const body = request.body ?? {};
    const tags = parseTags(body.tags, 'tags');
    let iid = body.iid?.toLowerCase();
    if (iid !== undefined && !isUuid(iid)) throw badRequest('body field "iid" must be a UUID', 'iid');
    iid ??= newId();
    const secret = newSecret();
    const record = { iid, oid: key.oid, desc: (body.desc ?? '').trim(), tags, secret_hash: hashSecret(secret), created: ctx.now() };
    await ctx.store.createInstallationKey(record);
    ctx.logger.info({ oid: key.oid, iid, tags, by: key.key_id }, 'installation key created');
    return reply.code(201).send({ ...installationKeyView(record), key: `${iid}.${secret}` });
  });

  app.delete('/v1/installationkeys/:oid', {
    schema: {
      tags: ['installation keys'],
      summary: 'Delete an installation key (iid in the body or the query); enrolled sensors keep working',
      params: OidParams,
      querystring: Type.Object({ iid: Type.Optional(IidField) }),
      body: Type.Union([Type.Object({ iid: Type.Optional(IidField) }), Type.Null()]),
      response: { 200: Type.Object({ deleted: Type.Boolean(), iid: Type.String() }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const given = request.body?.iid ?? request.query.iid;
    if (given === undefined || given === '') throw badRequest('body field or query parameter "iid" is required', 'iid');
    const iid = given.toLowerCase();
    if (!isUuid(iid) || !(await ctx.store.deleteInstallationKey(key.oid, iid))) throw notFound(`installation key ${given} not found`);
    ctx.logger.info({ oid: key.oid, iid, by: key.key_id }, 'installation key deleted');
    return { deleted: true, iid };
  });
}
