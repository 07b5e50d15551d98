// What every log source of `picket adapter` is: something that reads lines or messages and appends them to
// a sink (the disk buffer), until it is stopped or its input ends.
import type { MessageFields, SourceCursor } from '../message.js';

/** Where sources put what they read; the disk buffer. */
export interface MessageSink {
  /** Buffers one message; `cursor` is the source's position right after it. */
  append(fields: MessageFields, cursor?: SourceCursor): number;
  /** Records a position that no message carries (a file left for its rotated successor). */
  setCursor(cursor: SourceCursor): void;
  /** The position last recorded for a source key, from this run or a previous one. */
  cursor(key: string): unknown;
  hasRoom(): boolean;
  /** Sources that can wait (files, stdin) wait here while the buffer is full instead of making it drop. */
  waitForRoom(): Promise<void>;
}

export interface LogSource {
  /** For logs: `file:/var/log/syslog`, `stdin`, `syslog-udp:0.0.0.0:514`. */
  readonly name: string;
  start(): Promise<void>;
  /** Stops reading; resolves when nothing more will be appended. */
  stop(): Promise<void>;
  /** Resolves when the input has ended for good (stdin closed); never for sources that run until stopped. */
  readonly finished: Promise<void>;
  /** Counters for the status log. */
  stats(): Record<string, number>;
}
