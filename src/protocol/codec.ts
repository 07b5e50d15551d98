// Frame encoding of sensor protocol v1: JSON in text frames or msgpack in binary frames. A session
// answers in the encoding of the sensor's hello.
import { Packr } from 'msgpackr';

export type Encoding = 'json' | 'msgpack';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encodeFrame(message: unknown, encoding: Encoding): string | Buffer {
  return encoding === 'json' ? JSON.stringify(message) : packr.pack(message);
}

/** Decodes one frame; throws a SyntaxError-like Error with a readable message on malformed input. */
export function decodeFrame(data: Buffer, isBinary: boolean): { message: unknown; encoding: Encoding } {
  if (isBinary) {
    try {
      return { message: packr.unpack(data), encoding: 'msgpack' };
    } catch (err) {
      throw new Error(`malformed msgpack frame: ${(err as Error).message}`);
    }
  }
  try {
    return { message: JSON.parse(data.toString('utf8')), encoding: 'json' };
  } catch (err) {
    throw new Error(`malformed JSON frame: ${(err as Error).message}`);
  }
}
