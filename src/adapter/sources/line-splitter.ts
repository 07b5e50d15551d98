// Splits a byte stream into lines at LF (a trailing CR is dropped), keeping the exact number of bytes each
// line used so a file tailer knows its offset. Lines longer than the limit are cut and the rest of the
// line skipped, so one runaway line cannot exhaust memory or exceed the cloud's message size.

export interface SplitLine {
  text: string;
  /** Bytes the line took in the stream, its LF included. */
  bytes: number;
  /** The line was longer than the limit and was cut. */
  truncated: boolean;
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private kept = 0;
  private skipped = 0;

  constructor(private readonly maxLineBytes: number) {
    if (!(maxLineBytes >= 1)) throw new Error('maxLineBytes must be at least 1');
  }

  /** Bytes of the incomplete line held since the last LF. */
  get pendingBytes(): number {
    return this.kept + this.skipped;
  }

  /** Feeds a chunk (not retained: partial lines are copied); calls `onLine` for every complete line. */
  push(chunk: Buffer, onLine: (line: SplitLine) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        this.keep(chunk.subarray(start), true);
        return;
      }
      this.keep(chunk.subarray(start, nl), false);
      onLine(this.take(1));
      start = nl + 1;
    }
  }

  /** The incomplete line as a final line (the input ended without a LF); undefined when there is none. */
  end(): SplitLine | undefined {
    return this.pendingBytes > 0 ? this.take(0) : undefined;
  }

  /** Forgets the incomplete line (the file it came from was truncated). */
  reset(): void {
    this.parts = [];
    this.kept = 0;
    this.skipped = 0;
  }

  private keep(segment: Buffer, copy: boolean): void {
    if (segment.length === 0) return;
    const room = this.maxLineBytes - this.kept;
    const part = segment.length <= room ? segment : segment.subarray(0, Math.max(0, room));
    if (part.length > 0) {
      this.parts.push(copy ? Buffer.from(part) : part);
      this.kept += part.length;
    }
    this.skipped += segment.length - part.length;
  }

  private take(terminator: number): SplitLine {
    let buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.kept);
    if (buf.length > 0 && buf[buf.length - 1] === 0x0d && this.skipped === 0) buf = buf.subarray(0, buf.length - 1);
    const line: SplitLine = { text: buf.toString('utf8'), bytes: this.kept + this.skipped + terminator, truncated: this.skipped > 0 };
    this.reset();
    return line;
  }
}
