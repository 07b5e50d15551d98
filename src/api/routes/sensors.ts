// Sensors: list, read, delete, tags, and who is online (online state comes only from live sessions,
// through FleetPresence).
import { Type } from 'typebox';
import { isUuid } from '../../domain/ids.js';
import type { SensorRecord } from '../../domain/records.js';
import { CloseCode, DENIED_FOR } from '../../protocol/close-codes.js';
import { InvalidCursorError } from '../../store/errors.js';
import { loadSensor, principalOf, requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, badRequest } from '../errors.js';
import { errors, OidParams, OnlineInfo, SensorInfo, SensorListItem, SidParams, StringList, TagsResponse } from '../schemas.js';
import { onlineView, parseTags, sensorView, splitList, tagsView } from '../views.js';

const MAX_TTL_S = 10 * 365 * 86_400;

/** Cursor of an `is_online_only` listing: the last sid returned (a different form from the store's). */
function encodeOnlineCursor(sid: string): string {
  return `o.${sid}`;
}

const invalidToken = (): ApiError =>
  new ApiError(400, 'INVALID_CURSOR', 'query parameter "continuation_token" is not a token this API returned for this query', 'continuation_token');

function decodeOnlineCursor(cursor: string): string {
  const sid = cursor.startsWith('o.') ? cursor.slice(2) : '';
  if (!isUuid(sid)) throw invalidToken();
  return sid.toLowerCase();
}

export function registerSensorRoutes(app: ApiApp, ctx: ApiContext): void {
  const listItem = (s: SensorRecord) => {
    const online = ctx.presence.isOnline(s.sid);
    return { ...sensorView(s, online), is_online: online };
  };

  async function refreshTags(sid: string): Promise<ReturnType<typeof tagsView>> {
    const tags = await ctx.store.getSensorTags(sid, ctx.now());
    ctx.presence.tagsChanged(sid, tags);
    ctx.cloudAdapters.tagsChanged(sid, tags);
    return tagsView(sid, tags);
  }

  app.get('/v1/sensors/:oid', {
    schema: {
      tags: ['sensors'],
      summary: 'Sensors of the organization, a page at a time, ordered by sid',
      params: OidParams,
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000, description: 'Most sensors in this page' }),
        continuation_token: Type.Optional(Type.String({ maxLength: 512, description: 'From the previous page' })),
        with_hostname_prefix: Type.Optional(Type.String({ maxLength: 255, description: 'Only hostnames starting with this (case-insensitive)' })),
        is_online_only: Type.Boolean({ default: false, description: 'Only sensors with a live session' }),
        include_deleted: Type.Boolean({ default: false, description: 'Also list deleted sensors' }),
      }),
      response: {
        200: Type.Object({
          sensors: Type.Array(SensorListItem),
          continuation_token: Type.Optional(Type.String({ description: 'Present when there are more sensors: pass it to get the next page' })),
        }),
        ...errors,
      },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const q = request.query;
    if (q.is_online_only) {
      const after = q.continuation_token ? decodeOnlineCursor(q.continuation_token) : '';
      const prefix = q.with_hostname_prefix?.toLowerCase() ?? '';
      const sids = ctx.presence.onlineSids(key.oid).filter((s) => s > after).sort();
      const sensors: SensorRecord[] = [];
      let more = false;
      for (const sid of sids) {
        const s = await ctx.store.getSensor(sid);
        if (!s || s.oid !== key.oid || (s.deleted !== null && !q.include_deleted) || !s.hostname.toLowerCase().startsWith(prefix)) continue;
        if (sensors.length === q.limit) {
          more = true;
          break;
        }
        sensors.push(s);
      }
      const last = sensors.at(-1);
      return { sensors: sensors.map(listItem), ...(more && last ? { continuation_token: encodeOnlineCursor(last.sid) } : {}) };
    }
    let page;
    try {
      page = await ctx.store.listSensors(key.oid, {
        limit: q.limit,
        cursor: q.continuation_token || undefined,
        hostnamePrefix: q.with_hostname_prefix || undefined,
        includeDeleted: q.include_deleted,
      });
    } catch (err) {
      if (err instanceof InvalidCursorError) throw invalidToken();
      throw err;
    }
    return { sensors: page.sensors.map(listItem), ...(page.nextCursor ? { continuation_token: page.nextCursor } : {}) };
  });

  app.get('/v1/:sid', {
    schema: {
      tags: ['sensors'],
      summary: 'One sensor: its record, and whether it has a live session (is_online, and online: the session or {})',
      params: SidParams,
      response: { 200: Type.Object({ info: SensorInfo, is_online: Type.Boolean(), online: OnlineInfo }), ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    const session = ctx.presence.session(sensor.sid);
    return { info: sensorView(sensor, session !== undefined), is_online: session !== undefined, online: onlineView(session) };
  });

  app.delete('/v1/:sid', {
    schema: {
      tags: ['sensors'],
      summary: 'Delete a sensor: it is marked deleted, its live session is closed, and it is refused when it connects again',
      params: SidParams,
      response: { 200: Type.Object({ deleted: Type.Boolean(), sid: Type.String(), disconnected: Type.Boolean({ description: 'A live session was closed' }) }), ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    if (sensor.deleted === null) await ctx.store.setSensorDeleted(sensor.sid, ctx.now());
    const disconnected = ctx.presence.disconnect(sensor.sid, CloseCode.deleted, `sensor deleted by an operator; denied-for=${DENIED_FOR}`);
    ctx.logger.info({ oid: sensor.oid, sid: sensor.sid, disconnected, by: principalOf(request).key_id }, 'sensor deleted');
    return { deleted: true, sid: sensor.sid, disconnected };
  });

  app.get('/v1/:sid/tags', {
    schema: {
      tags: ['sensors'],
      summary: 'Current tags of a sensor, as {tags: {<sid>: {<tag>: info}}}',
      params: SidParams,
      response: { 200: TagsResponse, ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    return tagsView(sensor.sid, await ctx.store.getSensorTags(sensor.sid, ctx.now()));
  });

  app.post('/v1/:sid/tags', {
    schema: {
      tags: ['sensors'],
      summary: 'Add tags to a sensor (or refresh them), optionally expiring after ttl seconds; returns the tags now',
      description: 'JSON `{"tags": ["a","b"], "ttl": 3600}` or form `tags=a,b&ttl=3600`. Events routed from now on carry the new tags.',
      params: SidParams,
      body: Type.Object({
        tags: StringList('Tags to add: a list, or a comma-separated string'),
        ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TTL_S, description: 'Seconds until the tags expire; omit for never' })),
      }),
      response: { 200: TagsResponse, ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    const tags = parseTags(request.body.tags, 'tags');
    if (tags.length === 0) throw badRequest('body field "tags" names no tag', 'tags');
    const now = ctx.now();
    const expires = request.body.ttl !== undefined ? now + request.body.ttl * 1000 : null;
    const by = `api:${principalOf(request).name}`;
    await ctx.store.addSensorTags(sensor.sid, tags.map((tag) => ({ tag, by, added: now, expires })));
    return refreshTags(sensor.sid);
  });

  app.delete('/v1/:sid/tags', {
    schema: {
      tags: ['sensors'],
      summary: 'Remove tags from a sensor (`tag` or `tags`, comma-separated, in the body or the query); returns the tags now',
      params: SidParams,
      querystring: Type.Object({ tag: Type.Optional(StringList('A tag to remove')), tags: Type.Optional(StringList('Tags to remove, comma-separated')) }),
      body: Type.Union([Type.Object({ tag: Type.Optional(StringList('A tag to remove')), tags: Type.Optional(StringList('Tags to remove')) }), Type.Null()]),
      response: { 200: TagsResponse, ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    const body = request.body ?? {};
    const names = [...splitList(body.tag), ...splitList(body.tags), ...splitList(request.query.tag), ...splitList(request.query.tags)];
    if (names.length === 0) throw badRequest('give the tags to remove in "tags" (or "tag"), in the body or the query', 'tags');
    await ctx.store.removeSensorTags(sensor.sid, [...new Set(names)]);
    return refreshTags(sensor.sid);
  });

  app.get('/v1/online/:oid', {
    schema: {
      tags: ['sensors'],
      summary: 'Number of sensors of the organization online now',
      params: OidParams,
      response: { 200: Type.Object({ count: Type.Integer() }), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    return { count: ctx.presence.onlineCount(key.oid) };
  });

  app.post('/v1/online/:oid', {
    schema: {
      tags: ['sensors'],
      summary: 'Which of these sensors are online: {<sid>: boolean} (false for sensors of other organizations)',
      params: OidParams,
      body: Type.Object({ sids: StringList('Sensor ids: a list, or comma-separated') }),
      response: { 200: Type.Record(Type.String(), Type.Boolean()), ...errors },
    },
  }, async (request) => {
    const key = requireOrg(request, request.params.oid);
    const sids = splitList(request.body.sids);
    if (sids.length > 10_000) throw badRequest('body field "sids" has more than 10000 sensor ids', 'sids');
    const result: Record<string, boolean> = {};
    for (const sid of sids) {
      const session = ctx.presence.session(sid.toLowerCase());
      result[sid] = session !== undefined && session.oid === key.oid;
    }
    return result;
  });
}
