// USP v2 data messages (docs/usp.md §3): one msgpack map per binary frame, gzip-wrapped when the header
// says `is_compressed`. Decoding is bounded: the gunzipped message may not exceed the frame limit.
import { gunzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import { Packr } from 'msgpackr';
import { Type, type Static } from 'typebox';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

const Atom = Type.String({ maxLength: 64 });

export const UspDataMessage = Type.Object(
  {
    x: Type.Integer({ minimum: 1 }),
    a: Type.Optional(Type.Boolean()),
    t: Type.Optional(Type.String()),
    j: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Binary payload (a msgpack bin); checked separately, JSON Schema has no bytes type. */
    b: Type.Optional(Type.Unknown()),
    o: Type.Optional(Type.Unknown()),
    p: Type.Optional(Type.Unknown()),
    e: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
    s: Type.Optional(Type.Integer({ minimum: 0 })),
    inv: Type.Optional(Type.String({ maxLength: 256 })),
    this: Type.Optional(Atom),
    parent: Type.Optional(Atom),
    target: Type.Optional(Atom),
  },
  { additionalProperties: true },
);
export type UspDataMessage = Static<typeof UspDataMessage>;

const ajv = new Ajv({ allErrors: false, strict: false });
const validateData = ajv.compile<UspDataMessage>(UspDataMessage);

export class UspDecodeError extends Error {
  constructor(
    message: string,
    readonly tooBig = false,
  ) {
    super(message);
  }
}

/** Decodes one data frame; throws UspDecodeError with a readable reason. */
export function decodeDataMessage(frame: Buffer, compressed: boolean, maxBytes: number): UspDataMessage {
  let bytes = frame;
  if (compressed) {
    try {
      bytes = gunzipSync(frame, { maxOutputLength: maxBytes });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw new UspDecodeError(`data message larger than ${maxBytes} bytes after gunzip`, true);
      throw new UspDecodeError(`bad gzip: ${(err as Error).message}`);
    }
  }
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    throw new UspDecodeError(`bad msgpack: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) throw new UspDecodeError('data message must be a msgpack map');
  if (!validateData(value)) {
    const err = validateData.errors![0]!;
    const field = err.keyword === 'required' ? (err.params as { missingProperty: string }).missingProperty : err.instancePath.replace(/^\//, '') || 'message';
    throw new UspDecodeError(`data message ${field}: ${err.message ?? 'invalid'}`);
  }
  const m = value;
  if (m.o !== undefined || m.p !== undefined) throw new UspDecodeError('bundled data messages (o, p) are not supported');
  const payloads = (m.t !== undefined ? 1 : 0) + (m.j !== undefined ? 1 : 0) + (m.b !== undefined ? 1 : 0);
  if (payloads !== 1) throw new UspDecodeError(`data message ${m.x}: exactly one of t, j, b is required (got ${payloads})`);
  if (m.b !== undefined && !(m.b instanceof Uint8Array)) throw new UspDecodeError(`data message ${m.x}: b must be binary`);
  return m;
}
