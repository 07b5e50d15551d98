// From one line of a file or of stdin to a data message: `t` for text; for JSON lines `j` when the line is a
// JSON object, and otherwise `t` with the line as it is (nothing read is thrown away; the count of such
// lines is reported). Blank lines are skipped.
import type { Logger } from '../../observability/logger.js';
import type { MessageFields } from '../message.js';

export type LineFormat = 'text' | 'json';

export interface LineEncoderOptions {
  format: LineFormat;
  /** `e` of every message, when set. */
  eventType?: string;
  /** Set `s` to the time the line was read (off when the header maps the time from the payload). */
  stampReadTime: boolean;
  logger: Logger;
}

export class LineEncoder {
  /** Lines of a JSON source that were not a JSON object and were shipped as text. */
  notJson = 0;

  constructor(private readonly options: LineEncoderOptions) {}

  /** The message for a line, or undefined for a blank line. */
  encode(text: string, now: number): MessageFields | undefined {
    if (text.trim() === '') return undefined;
    const fields: MessageFields = this.payload(text);
    if (this.options.eventType !== undefined) fields.e = this.options.eventType;
    if (this.options.stampReadTime) fields.s = now;
    return fields;
  }

  private payload(text: string): MessageFields {
    if (this.options.format === 'text') return { t: text };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { j: value as Record<string, unknown> };
    this.notJson++;
    if (this.notJson === 1 || this.notJson % 1000 === 0) {
      this.options.logger.warn({ not_json_total: this.notJson, line: text.slice(0, 200) }, 'line is not a JSON object; shipped as text ({"text": line})');
    }
    return { t: text };
  }
}
