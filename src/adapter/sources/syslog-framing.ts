// Splits a syslog TCP stream into messages (RFC 6587): octet counting (`<length> <message>`) and
// newline-delimited (LF, or NUL as some relays send) framing, chosen per message by its first byte, as
// rsyslog and syslog-ng do: a message itself starts with `<`, a length with a digit. Messages longer than
// the limit are cut and the rest of them skipped.

export class SyslogFrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of an over-long octet-counted message still to skip. */
  private skipBytes = 0;
  /** An over-long newline-delimited message was cut: skip up to its end. */
  private skipLine = false;

  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes received and not yet part of a whole message. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  push(chunk: Buffer, onMessage: (message: string, truncated: boolean) => void): void {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let pos = 0;
    for (;;) {
      if (this.skipBytes > 0) {
        const n = Math.min(this.skipBytes, buf.length - pos);
        this.skipBytes -= n;
        pos += n;
        if (this.skipBytes > 0) break;
      }
      if (this.skipLine) {
        const end = lineEnd(buf, pos);
        if (end < 0) {
          pos = buf.length;
          break;
        }
        this.skipLine = false;
        pos = end + 1;
      }
      // Separators left between frames.
      while (pos < buf.length && (buf[pos] === 0x0a || buf[pos] === 0x0d || buf[pos] === 0x00)) pos++;
      if (pos >= buf.length) break;
      if (isDigit(buf[pos]!)) {
        let i = pos;
        while (i < buf.length && i - pos < 10 && isDigit(buf[i]!)) i++;
        if (i === buf.length) break; // the length is not complete yet
        if (buf[i] === 0x20) {
          const length = Number(buf.toString('latin1', pos, i));
          const start = i + 1;
          const keep = Math.min(length, this.maxMessageBytes);
          if (buf.length - start < keep) break; // wait for the rest
          onMessage(buf.toString('utf8', start, start + keep), keep < length);
          pos = start + keep;
          this.skipBytes = length - keep;
          continue;
        }
        // Digits not followed by a space: not a length, so a newline-delimited message.
      }
      const end = lineEnd(buf, pos);
      if (end < 0) {
        if (buf.length - pos > this.maxMessageBytes) {
          onMessage(buf.toString('utf8', pos, pos + this.maxMessageBytes), true);
          this.skipLine = true;
          pos = buf.length;
        }
        break;
      }
      onMessage(buf.toString('utf8', pos, Math.min(end, pos + this.maxMessageBytes)), end - pos > this.maxMessageBytes);
      pos = end + 1;
    }
    buf = buf.subarray(pos);
    // Keep a copy: `chunk` belongs to the socket.
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  }
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function lineEnd(buf: Buffer, from: number): number {
  for (let i = from; i < buf.length; i++) if (buf[i] === 0x0a || buf[i] === 0x00) return i;
  return -1;
}
