// USP v2 on /usp (docs/usp.md): a JSON connection header, then one msgpack data message per binary frame
// (gzip-wrapped when compressed); the server answers with JSON control messages {v, x?, dur?, win?, err?}.
// Each data message becomes a batch of one event whose sequence number is the message's `x`, so resends
// after a reconnect are recognised exactly like a sensor's resent batches.
import type { ServerConfig } from '../../config.js';
import { ARCHITECTURE } from '../../domain/platform.js';
import { CloseCode } from '../../protocol/close-codes.js';
import type { ServerMessage } from '../../protocol/messages.js';
import type { SessionWire, WireDecode } from '../gateway/session-wire.js';
import { decodeDataMessage, UspDecodeError } from './usp-data-message.js';
import { parseConnectionHeader } from './usp-header.js';
import { UspMapper } from './usp-mapping.js';

export const USP_PATH = '/usp';
export const USP_SOFTWARE_VERSION = 'usp/2';

type Control = { v: 'rd' } | { v: 'fl'; win: number } | { v: 'ack'; x: number } | { v: 'bo'; dur: number } | { v: 're' } | { v: 'error'; err: string };

function control(message: Control): string {
  return JSON.stringify(message);
}

export class UspWire implements SessionWire {
  readonly protocol = 'usp' as const;
  private compressed = false;
  private mapper: UspMapper | null = null;
  /** Sequence numbers whose sender asked for an ack, oldest first (x only grows within a connection). */
  private readonly ackRequests: number[] = [];

  constructor(
    private readonly config: ServerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  decode(data: Buffer, isBinary: boolean, opened: boolean): WireDecode {
    // The WebSocket layer lets somewhat larger frames through so that this refusal can say why.
    if (data.length > this.config.maxFrameBytes) {
      return { ok: false, code: CloseCode.tooBig, error: `message of ${data.length} bytes exceeds the limit of ${this.config.maxFrameBytes} bytes`, metric: 'frame_too_big' };
    }
    if (!opened) {
      if (isBinary) return { ok: false, code: CloseCode.badMessage, error: 'expected the JSON connection header first', metric: 'usp_bad_header' };
      return this.decodeHeader(data.toString('utf8'));
    }
    if (!isBinary) return { ok: false, code: CloseCode.badMessage, error: 'data messages must be binary frames', metric: 'usp_bad_message' };
    if (!this.mapper) return { ok: false, code: CloseCode.protocolViolation, error: 'data message before ready', metric: 'protocol_violation' };
    try {
      const m = decodeDataMessage(data, this.compressed, this.config.maxFrameBytes);
      const { event, hostname } = this.mapper.map(m);
      if (m.a === true) this.ackRequests.push(m.x);
      return { ok: true, message: { t: 'events', seq: m.x, events: [hostname === undefined ? event : { ...event, hostname }] } };
    } catch (err) {
      if (err instanceof UspDecodeError) {
        return { ok: false, code: err.tooBig ? CloseCode.tooBig : CloseCode.badMessage, error: err.message, metric: err.tooBig ? 'frame_too_big' : 'usp_bad_message' };
      }
      return { ok: false, code: CloseCode.badMessage, error: `bad data message: ${(err as Error).message}`, metric: 'usp_bad_message' };
    }
  }

  private decodeHeader(text: string): WireDecode {
    const parsed = parseConnectionHeader(text);
    if ('error' in parsed) return { ok: false, code: CloseCode.badMessage, error: parsed.error, metric: 'usp_bad_header' };
    const { header, installationKey, plat } = parsed;
    try {
      this.mapper = new UspMapper(header.mapping ?? {}, this.now);
    } catch (err) {
      return { ok: false, code: CloseCode.badMessage, error: `connection header mapping.parsing_re: ${(err as Error).message}`, metric: 'usp_bad_header' };
    }
    this.compressed = header.is_compressed === true;
    return {
      ok: true,
      message: {
        t: 'hello',
        hello: {
          t: 'hello',
          versions: [1],
          auth: { adapter: { oid: header.oid, installation_key: installationKey, sensor_seed_key: header.sensor_seed_key } },
          host: {
            hostname: header.host_name, plat, arch: ARCHITECTURE.usp_adapter, int_ip: '', mac: '', fingerprint: '',
            version: USP_SOFTWARE_VERSION, kernel: false, is_segregated: false,
          },
          stream_id: header.instance_id.toLowerCase(),
        },
      },
    };
  }

  encode(message: ServerMessage): Array<string | Buffer> {
    switch (message.t) {
      case 'welcome':
        return [control({ v: 'rd' }), control({ v: 'fl', win: this.config.uspWindow })];
      case 'ack': {
        // Cumulative, and only when asked: a client that requested nothing up to here expects nothing.
        let covered = 0;
        while (covered < this.ackRequests.length && this.ackRequests[covered]! <= message.seq) covered++;
        if (covered === 0) return [];
        this.ackRequests.splice(0, covered);
        return [control({ v: 'ack', x: message.seq })];
      }
      case 'backoff':
        return [control({ v: 'bo', dur: Math.max(1, Math.ceil(message.seconds)) })];
      case 'error':
        return [control({ v: 'error', err: message.message })];
      case 'task':
      case 'reenroll':
        // Adapters take no tasks and have no identity to drop.
        return [];
    }
  }

  reconnectFrames(): Array<string | Buffer> {
    return [control({ v: 're' })];
  }

  maxInflight(): number {
    return this.config.uspWindow;
  }
}
