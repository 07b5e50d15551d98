// What every output module implements (docs/outputs.md): it receives batches of records already filtered
// and shaped for its output, in log order, and delivers them or throws. The delivery loop
// (output-worker.ts) owns retries, backoff, pausing, cursors and error reporting; a module only talks to
// its destination.

/** One event as an output delivers it. */
export interface OutputRecord {
  /** Position in the event log (strictly increasing). */
  seq: number;
  oid: string;
  sid: string | null;
  event_type: string;
  /** routing.event_time, Unix ms (0 when the event has none). */
  event_time: number;
  /** The record after the output's shape options (is_flat, is_no_routing, is_prefix_data). */
  body: Record<string, unknown>;
  /** `body` serialised as JSON, once. */
  json: string;
}

export interface OutputModule {
  /**
   * How the delivery loop should batch for this module: at most `maxRecords` per send(), and when fewer
   * are waiting, hold them until the oldest has waited `maxWaitMs` (0: send at once). Records are only
   * ever held in the event log, never in the module, so nothing is lost in a crash.
   */
  readonly batching: { maxRecords: number; maxWaitMs: number };
  /**
   * Delivers the records, in order, all or nothing as far as the caller knows: resolves when the
   * destination has taken every one; rejects with an Error whose message says what the destination
   * answered (it becomes the output's last error) and the whole batch is retried later. A retried batch
   * may repeat records the destination already took (at-least-once).
   */
  send(records: ReadonlyArray<OutputRecord>): Promise<void>;
  /** Releases connections and files. */
  close(): Promise<void>;
  /**
   * For destinations that can tell what they already hold (the file module): the last log position the
   * destination has, which may be ahead of the output's cursor after a crash. The delivery loop calls it
   * once before its first read and continues after the larger of the two, so nothing is delivered twice.
   */
  resumeAfter?(): Promise<number | null>;
  /**
   * For destinations that keep such a record without syncing it every batch: makes what it says about the
   * batches delivered so far durable. The delivery loop calls it before each save of the output's cursor,
   * so a cursor that survives a power cut never covers a batch the record does not.
   */
  syncPosition?(): Promise<void>;
}

/** What a module factory gets: the output's module fields (already validated) and a few node facilities. */
export interface OutputModuleContext {
  /** The output's name, for messages. */
  name: string;
  oid: string;
  /** Module fields of the configuration (dest_host, secret_key, ...), as strings, numbers and booleans. */
  fields: Readonly<Record<string, string | number | boolean>>;
  /** The node's data directory (file outputs write relative paths under `<data>/outputs/`). */
  dataDir: string;
}

export type OutputModuleFactory = (ctx: OutputModuleContext) => OutputModule;

/**
 * A send that failed after the destination had taken the first `delivered` records (e.g. a webhook that
 * went down in the middle of a batch): the delivery loop moves past those before retrying the rest, so
 * they are not sent twice.
 */
export class PartialDeliveryError extends Error {
  constructor(
    message: string,
    readonly delivered: number,
  ) {
    super(message);
  }
}

export class OutputConfigError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}
