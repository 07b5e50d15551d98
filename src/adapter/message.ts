// What `picket adapter` ships: the fields of one USP data message besides its sequence number and ack
// flag (docs/usp.md §3), and the position in a source that a message brings the adapter to.

/** Payload and metadata of one data message; exactly one of `t`, `j`, `b` is set. */
export interface MessageFields {
  /** One line of text. */
  t?: string;
  /** A JSON object. */
  j?: Record<string, unknown>;
  /** Binary data. */
  b?: Uint8Array;
  /** Event type; overrides the header's mapping. */
  e?: string;
  /** Event time, Unix milliseconds; overrides the header's mapping. */
  s?: number;
  /** Investigation id. */
  inv?: string;
}

/**
 * Where a source stands once a message is buffered (a tailed file's inode and offset). Stored in the
 * same journal record as the message, so a restart resumes exactly after the last buffered line.
 */
export interface SourceCursor {
  /** Which source: `file:/var/log/syslog`. */
  key: string;
  value: unknown;
}

/** Event types are `[A-Za-z0-9_.:-]{1,64}` (docs/usp.md §3). */
export const EVENT_TYPE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
