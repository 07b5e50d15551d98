// Every API error is JSON `{error, code, status}` (plus `field` for a bad parameter), whatever raised it:
// a handler (ApiError), schema validation, the body parser, the store, or an unknown route.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../observability/logger.js';
import { InvalidCursorError, StoreConflictError, StoreNotFoundError } from '../store/errors.js';

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'INVALID_BODY'
  | 'INVALID_CURSOR'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'SENSOR_OFFLINE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_READY'
  | 'INTERNAL';

export interface ErrorBody {
  error: string;
  code: ErrorCode;
  status: number;
  /** The request field at fault (a body field, query parameter or path parameter), when there is one. */
  field?: string;
}

/** An error a handler throws on purpose; the error handler turns it into its JSON body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, field?: string): ApiError => new ApiError(400, 'VALIDATION_FAILED', message, field);
export const unauthorized = (message: string): ApiError => new ApiError(401, 'UNAUTHORIZED', message);
export const forbidden = (message: string): ApiError => new ApiError(403, 'FORBIDDEN', message);
export const notFound = (message: string): ApiError => new ApiError(404, 'NOT_FOUND', message);
export const conflict = (message: string): ApiError => new ApiError(409, 'CONFLICT', message);

interface ValidationItem {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

const PART_NAMES: Record<string, string> = { body: 'body field', querystring: 'query parameter', params: 'path parameter', headers: 'header' };

/** Turns the first schema-validation failure into a message that names the field, e.g. `query parameter "limit" must be <= 10000`. */
export function describeValidation(items: ReadonlyArray<ValidationItem>, context: string | undefined): { message: string; field: string | undefined } {
  const first = items[0];
  const part = PART_NAMES[context ?? ''] ?? context ?? 'request';
  if (!first) return { message: `invalid ${part}`, field: undefined };
  const segments = (first.instancePath ?? '').split('/').filter(Boolean).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let field = segments.length > 0 ? segments.join('.') : undefined;
  let message = first.message ?? 'is invalid';
  const params = first.params ?? {};
  if (first.keyword === 'required' && typeof params.missingProperty === 'string') {
    field = field ? `${field}.${params.missingProperty}` : params.missingProperty;
    message = 'is required';
  } else if (first.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    field = field ? `${field}.${params.additionalProperty}` : params.additionalProperty;
    message = 'is not allowed';
  } else if (first.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    message = `must be one of: ${params.allowedValues.map(String).join(', ')}`;
  }
  if (!field) return { message: `${context === 'body' ? 'request body' : part} ${message}`, field: undefined };
  return { message: `${part} "${field}" ${message}`, field };
}

function toBody(status: number, code: ErrorCode, message: string, field?: string): ErrorBody {
  return field === undefined ? { error: message, code, status } : { error: message, code, status, field };
}

/** Maps any error to `{error, code, status}`. */
export function errorBody(err: unknown): ErrorBody {
  if (err instanceof ApiError) return toBody(err.status, err.code, err.message, err.field);
  const e = err as Partial<FastifyError> & { validation?: ValidationItem[]; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const { message, field } = describeValidation(e.validation, e.validationContext);
    return toBody(400, 'VALIDATION_FAILED', message, field);
  }
  if (err instanceof StoreConflictError || e.code === 'CONFLICT') return toBody(409, 'CONFLICT', e.message ?? 'conflict');
  if (err instanceof StoreNotFoundError) return toBody(404, 'NOT_FOUND', e.message ?? 'not found');
  if (err instanceof InvalidCursorError || e.code === 'INVALID_CURSOR') return toBody(400, 'INVALID_CURSOR', 'query parameter "cursor" is not a cursor this API returned for this query', 'cursor');
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return toBody(413, 'PAYLOAD_TOO_LARGE', e.message ?? 'request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return toBody(415, 'UNSUPPORTED_MEDIA_TYPE', 'unsupported content type: send application/json or application/x-www-form-urlencoded');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return toBody(400, 'INVALID_BODY', 'request body is empty but content-type is application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return toBody(400, 'INVALID_BODY', `request body is not valid JSON: ${e.message ?? ''}`.trim());
    default:
      break;
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 400 && err instanceof SyntaxError) return toBody(400, 'INVALID_BODY', `request body is not valid JSON: ${err.message}`);
  if (status >= 400 && status < 500) return toBody(status, codeForStatus(status), e.message ?? 'bad request');
  return toBody(500, 'INTERNAL', 'internal error');
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401: return 'UNAUTHORIZED';
    case 403: return 'FORBIDDEN';
    case 404: return 'NOT_FOUND';
    case 405: return 'METHOD_NOT_ALLOWED';
    case 409: return 'CONFLICT';
    case 413: return 'PAYLOAD_TOO_LARGE';
    case 415: return 'UNSUPPORTED_MEDIA_TYPE';
    default: return 'INVALID_BODY';
  }
}

/** fastify error handler: logs server faults, answers with the JSON error body. */
export function errorHandler(logger: Logger) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply): void => {
    const body = errorBody(err);
    if (body.status >= 500) logger.error({ err, method: request.method, url: request.url, req_id: request.id }, 'API request failed');
    void reply.code(body.status).type('application/json; charset=utf-8').send(body);
  };
}

/** Unknown routes: 404 in the same JSON shape. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const path = request.url.split('?')[0];
  void reply.code(404).type('application/json; charset=utf-8').send(toBody(404, 'NOT_FOUND', `no route ${request.method} ${path}`));
}
