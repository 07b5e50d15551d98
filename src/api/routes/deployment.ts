// Deployment guards (decisions.md §3) as operators drive them: the organization's quota and its usage,
// undeleting a sensor, ordering a copy of a sensor to re-enroll, and reading the deployment (and other
// platform) streams where the resulting events land.
import { Type } from 'typebox';
import { isUuid } from '../../domain/ids.js';
import { PLATFORM } from '../../domain/platform.js';
import { CloseCode } from '../../protocol/close-codes.js';
import { quotaChangedEvent } from '../../sources/platform/deployment-events.js';
import { loadSensor, principalOf, requireOrg, requireRoot } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, notFound } from '../errors.js';
import { errors, OidParams, QuotaInput, SidParams } from '../schemas.js';
import { parseQuota } from '../views.js';
import { EventPageResponse, rangeQueryProps, sendEventPage } from './insight.js';

const STREAMS = ['deployment', 'audit', 'artifact', 'billing', 'schedule'] as const;
const PLATFORM_NAMES = new Map<number, string>(Object.entries(PLATFORM).map(([name, code]) => [code, name]));

export function registerDeploymentRoutes(app: ApiApp, ctx: ApiContext): void {
  app.post('/v1/orgs/:oid/quota', {
    schema: {
      tags: ['deployment'],
      summary: 'Set the organization\'s quota (most sensors online at once; root keys only) and emit quota_changed',
      description:
        'JSON `{"quota": 25}` (null for unlimited) or form `quota=25` (`quota=unlimited`). Lowering the quota disconnects nobody: ' +
        'sensors beyond it are refused only when they next connect. `quota_changed {old_quota, new_quota}` lands in the deployment stream when the value changes.',
      params: OidParams,
      body: Type.Object({ quota: QuotaInput }),
      response: {
        200: Type.Object({
          oid: Type.String(),
          old_quota: Type.Union([Type.Integer(), Type.Null()]),
          new_quota: Type.Union([Type.Integer(), Type.Null()]),
          changed: Type.Boolean({ description: 'false when the quota already had this value (no event emitted)' }),
        }),
        ...errors,
      },
    },
  }, async (request) => {
    const key = requireRoot(request, 'change an organization\'s quota');
    const oid = request.params.oid.toLowerCase();
    const quota = parseQuota(request.body.quota, 'quota');
    if (!isUuid(oid) || !(await ctx.store.getOrg(oid))) throw notFound(`organization ${request.params.oid} not found`);
    const old = await ctx.store.setOrgQuota(oid, quota);
    const changed = old !== quota;
    if (changed) await ctx.emit([quotaChangedEvent(oid, { old, new: quota }, ctx.now())]);
    ctx.logger.info({ oid, old_quota: old, new_quota: quota, by: key.key_id }, 'quota changed');
    return { oid, old_quota: old, new_quota: quota, changed };
  });

  app.get('/v1/quota_usage/:oid', {
    schema: {
      tags: ['deployment'],
      summary: 'Sensors online against the quota, with a breakdown per platform',
      description: 'Every sensor weighs 1, so `usage` is the number of sensors online now (from live sessions). `quota` is absent when unlimited.',
      params: OidParams,
      response: {
        200: Type.Object({
          usage: Type.Integer(),
          quota: Type.Optional(Type.Integer()),
          breakdown: Type.Record(Type.String(), Type.Object({
            count: Type.Integer({ description: 'Sensors of this platform online' }),
            weight: Type.Number({ description: 'Quota units one sensor of this platform uses' }),
            quota: Type.Number({ description: 'Quota units used: count × weight' }),
          })),
        }),
        ...errors,
      },
    },
  }, async (request) => {
    const oid = request.params.oid.toLowerCase();
    const key = principalOf(request);
    if (key.role !== 'root') requireOrg(request, oid);
    const org = isUuid(oid) ? await ctx.store.getOrg(oid) : null;
    if (!org) throw notFound(`organization ${request.params.oid} not found`);
    const breakdown: Record<string, { count: number; weight: number; quota: number }> = {};
    const online = ctx.presence.onlineSids(oid);
    for (const sid of online) {
      const sensor = await ctx.store.getSensor(sid);
      const name = sensor ? (PLATFORM_NAMES.get(sensor.plat) ?? `plat_${sensor.plat}`) : 'unknown';
      const entry = (breakdown[name] ??= { count: 0, weight: 1, quota: 0 });
      entry.count++;
      entry.quota += entry.weight;
    }
    return { usage: online.length, ...(org.quota !== null ? { quota: org.quota } : {}), breakdown };
  });

  app.post('/v1/:sid/undelete', {
    schema: {
      tags: ['deployment'],
      summary: 'Lift a deleted sensor\'s ban: it is let in with the same sid when it next connects',
      params: SidParams,
      response: { 200: Type.Object({ undeleted: Type.Boolean({ description: 'false when the sensor was not deleted' }), sid: Type.String() }), ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    if (sensor.deleted === null) return { undeleted: false, sid: sensor.sid };
    await ctx.store.setSensorDeleted(sensor.sid, null);
    // A later deletion starts a new 24-hour window of deleted_sensor notices.
    await ctx.store.clearSensorNotice(sensor.sid, 'deleted_sensor');
    if (sensor.issue?.kind === 'deleted') await ctx.store.recordSensorIssue(sensor.sid, null);
    ctx.logger.info({ oid: sensor.oid, sid: sensor.sid, by: principalOf(request).key_id }, 'sensor undeleted');
    return { undeleted: true, sid: sensor.sid };
  });

  app.post('/v1/:sid/reenroll', {
    schema: {
      tags: ['deployment'],
      summary: 'Order a copy of the sensor to drop its identity and enroll as a new sensor (clone remediation)',
      description:
        'JSON `{"hostname": "copy-01"}` or form `hostname=copy-01` names the copy; without it the order applies to the live session, or to ' +
        'whichever copy connects next. A live session of the named copy is told at once (close 4012); otherwise the order waits for its next ' +
        'connection. The copy enrolls again with its installation key and gets a new sid (and its own `enrollment`); the other copies keep the sid.',
      params: SidParams,
      // Null: a POST without any body (as for the other routes whose body is optional).
      body: Type.Union([Type.Object({ hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }), Type.Null()]),
      response: {
        200: Type.Object({
          sid: Type.String(),
          hostname: Type.Union([Type.String(), Type.Null()]),
          delivered: Type.Boolean({ description: 'true: a live session of that copy was told now; false: the order waits for its next connection' }),
        }),
        ...errors,
      },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    if (sensor.deleted !== null) throw new ApiError(409, 'CONFLICT', `sensor ${sensor.sid} is deleted: undelete it first, or let the copy enroll anew`);
    const hostname = request.body?.hostname ?? null;
    const live = ctx.presence.session(sensor.sid);
    const delivered = live !== undefined && (hostname === null || live.hostname === hostname)
      && ctx.presence.disconnect(sensor.sid, CloseCode.reenroll, `re-enroll ordered by an operator for host "${live.hostname}": drop the identity and enroll again`);
    // Delivered to the live copy: it re-enrolls now. Otherwise the order waits for that copy's next hello.
    await ctx.store.setReenrollOrder(sensor.sid, delivered ? null : { hostname, at: ctx.now() });
    ctx.logger.info({ oid: sensor.oid, sid: sensor.sid, hostname, delivered, by: principalOf(request).key_id }, 're-enroll ordered');
    return { sid: sensor.sid, hostname, delivered };
  });

  app.post('/v1/:sid/reconnect', {
    schema: {
      tags: ['deployment'],
      summary: 'Ask the sensor or adapter to reconnect now (e.g. to move it to another node)',
      description:
        'A USP adapter gets `{"v":"re"}`, a sensor the close code 1012; both come back, resend what was not acknowledged, and nothing is lost ' +
        'or stored twice. 409 when the sensor has no live session.',
      params: SidParams,
      response: { 200: Type.Object({ sid: Type.String(), reconnecting: Type.Boolean() }), ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    if (!ctx.presence.requestReconnect(sensor.sid, 'reconnect requested by an operator')) {
      throw new ApiError(409, 'SENSOR_OFFLINE', `sensor ${sensor.sid} has no live session`);
    }
    ctx.logger.info({ oid: sensor.oid, sid: sensor.sid, by: principalOf(request).key_id }, 'reconnect requested');
    return { sid: sensor.sid, reconnecting: true };
  });

  app.get('/v1/insight/:oid/stream/:stream', {
    schema: {
      tags: ['events'],
      summary: 'An organization\'s stored events of one platform stream (deployment, audit, ...) between start and end (Unix seconds, inclusive)',
      description: 'Paged like the sensor timeline: pass `next_cursor` as `cursor`. Sensor telemetry (the `event` stream) is read per sensor at /v1/insight/{oid}/{sid}.',
      params: Type.Object({ oid: Type.String({ description: 'Organization id (UUID)' }), stream: Type.Enum([...STREAMS], { description: 'Platform stream' }) }),
      querystring: Type.Object(rangeQueryProps),
      response: { 200: EventPageResponse, ...errors },
    },
  }, async (request, reply) => {
    const oid = request.params.oid.toLowerCase();
    requireOrg(request, oid);
    const q = request.query;
    return sendEventPage(q, reply, (range) => ctx.store.queryStream({ oid, stream: request.params.stream, ...range, limit: q.limit, forward: q.is_forward }));
  });
}
