// The WebSocket form of the live stream (platform-reference.md §4.3): connect to /v1/stream/ws, send one
// JSON message {oid, api_key, type?, sid?, tag?, inv_id?, event_type?}, then receive one text frame per
// line exactly as in the NDJSON form ({"__trace":"connected"}, events, keepalives, drops). A bad first
// message gets {"__trace":"error","error":"..."} and a close with 4000 (bad request) or 4003 (bad key).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError } from './errors.js';
import type { ApiContext } from './context.js';
import { liveStreamRequest, type LiveStreamFields } from './routes/live-stream.js';

export const LIVE_STREAM_WS_PATH = '/v1/stream/ws';
const FIRST_MESSAGE_TIMEOUT_MS = 10_000;
/** Bytes buffered in the socket before the stream counts as "not writable" (its queue then drops oldest). */
const HIGH_WATER_BYTES = 1024 * 1024;

export function liveStreamUpgradeHandler(ctx: ApiContext): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false, clientTracking: false });
  return (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] !== LIVE_STREAM_WS_PATH) return false;
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, ctx));
    return true;
  };
}

function refuse(ws: WebSocket, code: number, error: string): void {
  ws.send(JSON.stringify({ __trace: 'error', error }));
  ws.close(code, error.slice(0, 120));
}

function serve(ws: WebSocket, ctx: ApiContext): void {
  const timer = setTimeout(() => refuse(ws, 4000, 'no subscription message within 10 s'), FIRST_MESSAGE_TIMEOUT_MS);
  ws.once('message', (data, isBinary) => {
    clearTimeout(timer);
    void (async () => {
      let message: LiveStreamFields & { oid?: unknown; api_key?: unknown };
      try {
        if (isBinary) throw new Error('send the subscription as a JSON text frame');
        message = JSON.parse(data.toString()) as typeof message;
        if (typeof message !== 'object' || message === null) throw new Error('the subscription must be a JSON object');
      } catch (err) {
        return refuse(ws, 4000, (err as Error).message);
      }
      const key = typeof message.api_key === 'string' ? await ctx.keys.verify(message.api_key) : null;
      if (!key) return refuse(ws, 4003, 'invalid or missing api_key');
      if (typeof message.oid !== 'string' || message.oid.toLowerCase() !== key.oid) return refuse(ws, 4003, `this API key has no access to organization ${String(message.oid)}`);
      let request;
      try {
        request = liveStreamRequest(message);
      } catch (err) {
        return refuse(ws, 4000, err instanceof ApiError ? err.message : String(err));
      }
      let writable = true;
      const subscription = ctx.live.subscribe({ oid: key.oid, ...request }, {
        write: (line) => {
          if (ws.readyState !== ws.OPEN) return false;
          ws.send(line, () => {
            if (!writable && ws.bufferedAmount < HIGH_WATER_BYTES) {
              writable = true;
              subscription.drained();
            }
          });
          writable = ws.bufferedAmount < HIGH_WATER_BYTES;
          return writable;
        },
        close: () => ws.close(1000),
      });
      ws.on('close', () => subscription.close());
      ctx.logger.info({ oid: key.oid, stream: request.stream, key_id: key.key_id }, 'live stream opened (websocket)');
    })();
  });
  ws.on('error', () => undefined);
}
