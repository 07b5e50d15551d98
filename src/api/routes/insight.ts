// A sensor's timeline (platform-reference.md §9 `insight/{oid}/{sid}`): its stored events over a time
// range, optionally of one event type, a page at a time. The events are returned exactly as stored (the
// envelope JSON written once by the pipeline): the body is concatenated, never parsed and re-serialised.
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { InvalidCursorError } from '../../store/errors.js';
import type { TimelinePage } from '../../store/store.js';
import { loadSensor, requireOrg } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, badRequest } from '../errors.js';
import { errors } from '../schemas.js';

/** Largest accepted time value: 9999-12-31T23:59:59Z in Unix seconds. */
export const MAX_TIME_S = 253_402_300_799;
export const MAX_EVENTS_PER_PAGE = 10_000;

/** Query parameters shared by every paged event read: a time range in Unix seconds, a page size, a cursor, a direction. */
export const rangeQueryProps = {
  start: Type.Integer({ minimum: 0, maximum: MAX_TIME_S, description: 'Start of the range, Unix seconds (inclusive)' }),
  end: Type.Integer({ minimum: 0, maximum: MAX_TIME_S, description: 'End of the range, Unix seconds (inclusive: the whole second)' }),
  limit: Type.Integer({ minimum: 1, maximum: MAX_EVENTS_PER_PAGE, default: 1000, description: 'Most events in this page' }),
  cursor: Type.Optional(Type.String({ maxLength: 1024, description: 'next_cursor of the previous page; empty or "-" for the first page' })),
  is_forward: Type.Boolean({ default: true, description: 'true: oldest first; false: newest first' }),
};

/** The answer of a paged event read: `{events, next_cursor}`, events as stored. */
export const EventPageResponse = Type.Object({
  events: Type.Array(Type.Object({ routing: Type.Object({}, { additionalProperties: true }), event: Type.Unknown() }, { additionalProperties: true })),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

/** Checks the range, reads one page through `read` (Unix ms bounds), and sends the stored envelopes verbatim. */
export async function sendEventPage(
  q: { start: number; end: number; cursor?: string | undefined },
  reply: FastifyReply,
  read: (range: { start: number; end: number; cursor: string | undefined }) => Promise<TimelinePage>,
): Promise<FastifyReply> {
  if (q.start > q.end) throw badRequest(`query parameter "start" (${q.start}) must not be after "end" (${q.end})`, 'start');
  const cursor = q.cursor === undefined || q.cursor === '' || q.cursor === '-' ? undefined : q.cursor;
  let page: TimelinePage;
  try {
    page = await read({ start: q.start * 1000, end: q.end * 1000 + 999, cursor });
  } catch (err) {
    if (err instanceof InvalidCursorError) throw new ApiError(400, 'INVALID_CURSOR', 'query parameter "cursor" is not a cursor this API returned for this query', 'cursor');
    throw err;
  }
  const body = `{"events":[${page.events.join(',')}],"next_cursor":${JSON.stringify(page.nextCursor)}}`;
  // A JSON string with a JSON content type is sent as is (the response schema documents its shape).
  return reply.type('application/json; charset=utf-8').send(body as never);
}

export function registerInsightRoutes(app: ApiApp, ctx: ApiContext): void {
  app.get('/v1/insight/:oid/:sid', {
    schema: {
      tags: ['events'],
      summary: "A sensor's events between start and end (Unix seconds, inclusive), oldest first unless is_forward=false",
      description:
        'Each page holds at most `limit` events; when more match, `next_cursor` is set: pass it as `cursor` (with the same other ' +
        'parameters) for the next page. `next_cursor` is null on the last page. Events are `{routing, event}` envelopes as stored.',
      params: Type.Object({ oid: Type.String({ description: 'Organization id (UUID)' }), sid: Type.String({ description: 'Sensor id (UUID)' }) }),
      querystring: Type.Object({
        ...rangeQueryProps,
        event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_:.\\-]+$', description: 'Only events of this type (case-sensitive)' })),
      }),
      response: { 200: EventPageResponse, ...errors },
    },
  }, async (request, reply) => {
    const { oid, sid } = request.params;
    requireOrg(request, oid);
    const sensor = await loadSensor(ctx, request, sid);
    const q = request.query;
    return sendEventPage(q, reply, (range) =>
      ctx.store.queryTimeline({ oid: sensor.oid, sid: sensor.sid, ...range, eventType: q.event_type, limit: q.limit, forward: q.is_forward }),
    );
  });
}
