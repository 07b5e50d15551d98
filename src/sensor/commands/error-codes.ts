// The ERROR codes the reference sensor answers with (platform-reference.md §3.5).
export const ERROR = {
  SUCCESS: 0,
  INVALID_FUNCTION: 1,
  FILE_NOT_FOUND: 2,
  ACCESS_DENIED: 5,
  NOT_SUPPORTED: 50,
  INVALID_PARAMETER: 87,
  TIMEOUT: 1460,
} as const;

/** A command's answer: the result event and its payload (always with ERROR). */
export interface CommandResult {
  eventType: string;
  payload: { ERROR: number; ERROR_MESSAGE?: string } & Record<string, unknown>;
}

export function result(eventType: string, error: number, message?: string, extra: Record<string, unknown> = {}): CommandResult {
  return { eventType, payload: { ERROR: error, ...(message !== undefined ? { ERROR_MESSAGE: message } : {}), ...extra } };
}

/** A command refused for its arguments: thrown by a command, answered with its result event and ERROR 87. */
export class BadArguments extends Error {
  override name = 'BadArguments';
}
