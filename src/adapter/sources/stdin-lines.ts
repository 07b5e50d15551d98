// Lines from a stream (stdin: `journalctl -o json -f | picket adapter --stdin`), one message each. While the
// buffer is full the stream is not read, so the writer blocks on the pipe instead of losing lines. The
// source is finished when the stream ends; a last line without LF is shipped too.
import type { Readable } from 'node:stream';
import type { Logger } from '../../observability/logger.js';
import type { LineEncoder } from './line-encoder.js';
import { LineSplitter, type SplitLine } from './line-splitter.js';
import type { LogSource, MessageSink } from './source.js';

export interface StreamLineSourceOptions {
  input: Readable;
  sink: MessageSink;
  encoder: LineEncoder;
  logger: Logger;
  maxLineBytes: number;
  name?: string;
}

export class StreamLineSource implements LogSource {
  readonly name: string;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private readonly splitter: LineSplitter;
  private readonly log: Logger;
  private stopping = false;
  private running: Promise<void> | null = null;
  private readonly counters = { lines: 0, bytes: 0, truncated_lines: 0 };

  constructor(private readonly options: StreamLineSourceOptions) {
    this.name = options.name ?? 'stdin';
    this.log = options.logger.child({ source: this.name });
    this.splitter = new LineSplitter(options.maxLineBytes);
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  async start(): Promise<void> {
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.options.input.destroy();
    await this.running;
  }

  stats(): Record<string, number> {
    return { ...this.counters, not_json: this.options.encoder.notJson };
  }

  private async run(): Promise<void> {
    try {
      for await (const chunk of this.options.input) {
        this.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer), (line) => this.onLine(line));
        if (!this.options.sink.hasRoom()) await this.options.sink.waitForRoom();
        if (this.stopping) break;
      }
      const tail = this.splitter.end();
      if (tail && !this.stopping) this.onLine(tail);
      if (!this.stopping) this.log.info({ lines: this.counters.lines }, 'input ended');
    } catch (err) {
      if (!this.stopping) this.log.error({ err: (err as Error).message }, 'reading the input failed');
    } finally {
      this.resolveFinished();
    }
  }

  private onLine(line: SplitLine): void {
    this.counters.bytes += line.bytes;
    if (line.truncated) {
      this.counters.truncated_lines++;
      this.log.warn({ bytes: line.bytes, max_line_bytes: this.options.maxLineBytes }, 'line longer than --max-line-bytes; cut');
    }
    const fields = this.options.encoder.encode(line.text, Date.now());
    if (!fields) return;
    this.counters.lines++;
    this.options.sink.append(fields);
  }
}
