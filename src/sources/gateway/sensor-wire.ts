// Protocol v1 on /sensor (docs/protocol.md): JSON text frames or msgpack binary frames, one message per
// frame, answered in the encoding of the sensor's hello. Frames over max_frame_bytes are refused here
// (1009, after an `error`), not by the WebSocket layer, so the sensor is told why.
import type { ServerConfig } from '../../config.js';
import { CloseCode } from '../../protocol/close-codes.js';
import { decodeFrame, encodeFrame, type Encoding } from '../../protocol/codec.js';
import type { ServerMessage } from '../../protocol/messages.js';
import { checkSensorMessage } from './message-validator.js';
import type { SessionWire, WireDecode } from './session-wire.js';

export class SensorWire implements SessionWire {
  readonly protocol = 'sensor' as const;
  private encoding: Encoding = 'json';

  constructor(private readonly config: Pick<ServerConfig, 'maxFrameBytes'>) {}

  decode(data: Buffer, isBinary: boolean, opened: boolean): WireDecode {
    if (data.length > this.config.maxFrameBytes) {
      return { ok: false, code: CloseCode.tooBig, error: `frame of ${data.length} bytes exceeds max_frame_bytes ${this.config.maxFrameBytes}`, metric: 'frame_too_big' };
    }
    let decoded: { message: unknown; encoding: Encoding };
    try {
      decoded = decodeFrame(data, isBinary);
    } catch (err) {
      return { ok: false, code: CloseCode.badMessage, error: (err as Error).message, metric: 'malformed' };
    }
    const check = checkSensorMessage(decoded.message);
    if (!check.ok) {
      return check.unknownType
        ? { ok: false, code: CloseCode.unknownType, error: check.error, metric: 'unknown_type' }
        : { ok: false, code: CloseCode.badMessage, error: check.error, metric: 'invalid_message' };
    }
    const message = check.message;
    if (message.t === 'hello') {
      // The hello fixes the session's encoding; a second hello is the session's to refuse.
      if (!opened) this.encoding = decoded.encoding;
      return { ok: true, message: { t: 'hello', hello: message } };
    }
    return { ok: true, message };
  }

  encode(message: ServerMessage): Array<string | Buffer> {
    return [encodeFrame(message, this.encoding)];
  }

  reconnectFrames(): Array<string | Buffer> {
    // v1 sensors reconnect (with backoff) after any close that is not fatal; the close itself says it.
    return [];
  }

  maxInflight(config: ServerConfig): number {
    return config.maxInflightBatches;
  }
}
