// Live streams (platform-reference.md §4.3): POST /v1/stream/{oid} answers NDJSON for as long as the
// client reads: {"__trace":"connected"}, then the organization's events of one stream as they are stored
// (schedule ticks as they are published; filtered like an output: sid, tag, inv_id, event types), {"__trace":"keepalive"} on a timer, and
// {"__trace":"dropped","n":N} when the client read too slowly. The WebSocket form is
// live-stream-socket.ts. Events with a "__" investigation id never appear.
import { Ajv } from 'ajv';
import { Type } from 'typebox';
import { LIVE_STREAMS, type LiveStream, type OutputFilters } from '../../domain/outputs.js';
import { requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { errors, OidParams } from '../schemas.js';

const StreamFields = Type.Object(
  {
    type: Type.Optional(Type.String({ description: `stream: ${LIVE_STREAMS.join(', ')} (default event)` })),
    sid: Type.Optional(Type.String({ maxLength: 64 })),
    tag: Type.Optional(Type.String({ maxLength: 128 })),
    inv_id: Type.Optional(Type.String({ maxLength: 256 })),
    event_type: Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1000 })])),
  },
  { additionalProperties: false },
);

const fieldChecker = new Ajv({ strict: false }).compile(StreamFields);
function checkFields(value: unknown): boolean {
  return fieldChecker(value);
}
function describeFieldErrors(): string {
  const e = fieldChecker.errors?.[0];
  return e ? `${e.instancePath.replace(/^\//, '') || 'body'} ${e.message ?? 'invalid'}${e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty: string }).additionalProperty)})` : ''}` : 'invalid';
}

export interface LiveStreamFields {
  type?: string | undefined;
  sid?: string | undefined;
  tag?: string | undefined;
  inv_id?: string | undefined;
  event_type?: string | string[] | undefined;
}

/** Turns a live stream request's fields into a stream and filters; throws a 400 naming the field. */
export function liveStreamRequest(fields: LiveStreamFields): { stream: LiveStream; filters: OutputFilters } {
  const stream = (fields.type ?? 'event') as LiveStream;
  if (!(LIVE_STREAMS as readonly string[]).includes(stream)) throw badRequest(`field "type": unknown stream "${stream}" (one of ${LIVE_STREAMS.join(', ')})`, 'type');
  const sid = fields.sid ? fields.sid.toLowerCase() : null;
  if (sid !== null && !/^[0-9a-f-]{36}$/.test(sid)) throw badRequest('field "sid" must be a sensor id (UUID)', 'sid');
  const types = fields.event_type === undefined ? [] : (Array.isArray(fields.event_type) ? fields.event_type : fields.event_type.split(/[\n,]/)).map((t) => t.trim()).filter((t) => t !== '');
  return {
    stream,
    filters: { event_white_list: types, event_black_list: [], sid, tag: fields.tag || null, inv_id: fields.inv_id || null, sample_rate: 1 },
  };
}

export function registerLiveStreamRoutes(app: ApiApp, ctx: ApiContext): void {
  app.post('/v1/stream/:oid', {
    // Reading a stream changes nothing: read-only keys may use it although it is a POST.
    config: { readOnly: true },
    schema: {
      tags: ['outputs'],
      summary: 'Live stream of the organization\'s events as NDJSON (form, JSON or query fields: type, sid, tag, inv_id, event_type)',
      params: OidParams,
      querystring: StreamFields,
      response: { ...errors },
    },
  }, async (request, reply) => {
    const key = requireOrg(request, request.params.oid);
    // Fields come in the query, or in a JSON or form body (checked like the query).
    const body = request.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body) || !checkFields(body)) throw badRequest(`request body: ${describeFieldErrors()}`, undefined);
    const { stream, filters } = liveStreamRequest({ ...request.query, ...(body as LiveStreamFields) });
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    raw.flushHeaders();
    const subscription = ctx.live.subscribe({ oid: key.oid, stream, filters }, {
      write: (line) => raw.write(`${line}\n`),
      // The stream ends with the connection: a live stream is never idle, so it must not hold a shutdown up.
      close: () => raw.end(() => raw.socket?.destroy()),
    });
    raw.on('drain', () => subscription.drained());
    // The response's 'close' is the client going away (the request's fires as soon as its body is read).
    raw.on('close', () => subscription.close());
    ctx.logger.info({ oid: key.oid, stream, key_id: key.key_id }, 'live stream opened');
  });
}
