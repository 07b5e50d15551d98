// Validates sensor protocol messages against the schemas in protocol/messages.ts, with errors that name
// the offending field (they end up in the close reason the sensor sees).
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { SENSOR_MESSAGE_SCHEMAS, type SensorMessage, type SensorMessageType } from '../../protocol/messages.js';

// ajv-formats is CommonJS; its default export arrives wrapped under NodeNext.
const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

const ajv = new Ajv({ allErrors: false, strict: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);

const validators = new Map<string, ValidateFunction>(Object.entries(SENSOR_MESSAGE_SCHEMAS).map(([t, schema]) => [t, ajv.compile(schema)]));

export type MessageCheck = { ok: true; message: SensorMessage } | { ok: false; unknownType: boolean; error: string };

function describe(err: ErrorObject): string {
  const path = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (err.keyword === 'required') {
    const field = (err.params as { missingProperty: string }).missingProperty;
    return `${path ? `${path}.` : ''}${field}: required`;
  }
  if (err.keyword === 'additionalProperties') {
    const field = (err.params as { additionalProperty: string }).additionalProperty;
    return `${path ? `${path}.` : ''}${field}: unknown field`;
  }
  return `${path || 'message'}: ${err.message ?? 'invalid'}`;
}

export function checkSensorMessage(value: unknown): MessageCheck {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, unknownType: false, error: 'message must be an object' };
  const t = (value as { t?: unknown }).t;
  if (typeof t !== 'string') return { ok: false, unknownType: false, error: 't: required' };
  const validate = validators.get(t);
  if (!validate) return { ok: false, unknownType: true, error: `unknown message type "${t.slice(0, 40)}"` };
  if (!validate(value)) return { ok: false, unknownType: false, error: `${t}: ${describe(validate.errors![0]!)}` };
  return { ok: true, message: value as SensorMessage };
}

export function isKnownMessageType(t: string): t is SensorMessageType {
  return validators.has(t);
}
