// WebSocket close codes of Picket sensor protocol v1 (docs/protocol.md "Closing").

export const CloseCode = {
  /** Normal end of session (sensor shutting down). */
  normal: 1000,
  /** Server shutting down or restarting; reconnect with backoff. */
  goingAway: 1001,
  /** The server asks the sensor to reconnect now (operator request, rebalancing); reconnect and resend. */
  serviceRestart: 1012,
  /** Frame larger than the negotiated maximum (max_frame_bytes). */
  tooBig: 1009,
  /** Malformed frame: not JSON/msgpack, or not a valid message of its type. */
  badMessage: 4000,
  /** None of the protocol versions offered in hello is supported. */
  unsupportedVersion: 4001,
  /** Unknown message type `t`. */
  unknownType: 4002,
  /** Invalid installation key, unknown sensor, or wrong sensor secret. Do not retry with the same credentials. */
  unauthorized: 4003,
  /** Message out of order: anything before hello, a second hello, or no hello in time. */
  protocolViolation: 4005,
  /** Batch sequence number not increasing within a session. */
  badSequence: 4006,
  /** No sign of life (pong or frame) within the liveness timeout. */
  livenessTimeout: 4008,
  /** Another session for the same sensor took over. */
  replaced: 4009,
  /** Organization is at its sensor quota; the reason carries "retry-after=<seconds>". */
  overQuota: 4010,
  /** The sensor was deleted by an operator; the reason carries "denied-for=<duration>". */
  deleted: 4011,
  /** The sensor was told to drop its identity and enroll again (also: the sid is unknown, e.g. forgotten after deletion). */
  reenroll: 4012,
  /** Another host holds a live session with this sensor id (a clone); the reason carries "retry-after=<seconds>". */
  cloneConflict: 4013,
  /** Server is overloaded or not ready; retry after the delay in the reason. */
  tryAgainLater: 1013,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which retrying with the same identity is pointless without operator action. */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.unauthorized, CloseCode.unsupportedVersion]);

/** The deleted-sensor ban (decisions.md §3): what the sensor is told, and in ms. */
export const DENIED_FOR = '720h0m0s';
export const DENIED_FOR_MS = 720 * 3600 * 1000;
