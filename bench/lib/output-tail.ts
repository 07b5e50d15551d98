// Follows a file output while a benchmark runs: counts its lines and samples "sent → on disk in the
// output" latency from each sampled line's routing.event_time (set by the simulator when it builds the
// batch) to the moment the line is seen in the file. Polls every 5 ms (every 20 ms until 2026-12-07), so
// latencies carry up to 5 ms of polling error.
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { LatencyRecorder } from '../../src/simulator/latency-recorder.js';

const EVENT_TIME = /"event_time":(\d+)/;
const POLL_MS = 5;

export class OutputTail {
  readonly latency = new LatencyRecorder();
  lines = 0;
  private offset = 0;
  private partial = '';
  private timer: NodeJS.Timeout | null = null;
  private recordFrom = Number.POSITIVE_INFINITY;
  private recordUntil = Number.POSITIVE_INFINITY;
  private fd: number | null = null;

  constructor(
    private readonly file: string,
    private readonly sampleEvery = 20,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** Samples only events built in [from, until) (Unix ms): one run's events after its warm-up. */
  window(from: number, until = Number.POSITIVE_INFINITY): void {
    this.latency.reset();
    this.recordFrom = from;
    this.recordUntil = until;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.poll();
    if (this.fd !== null) closeSync(this.fd);
  }

  private poll(): void {
    if (this.fd === null) {
      if (!existsSync(this.file)) return;
      this.fd = openSync(this.file, 'r');
    }
    const now = Date.now();
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.offset);
      if (n <= 0) return;
      this.offset += n;
      const text = this.partial + buf.toString('utf8', 0, n);
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        this.lines++;
        if (this.lines % this.sampleEvery !== 0) continue;
        const m = EVENT_TIME.exec(line);
        if (!m) continue;
        const t = Number(m[1]);
        if (t >= this.recordFrom && t < this.recordUntil) this.latency.record(now - t, this.sampleEvery);
      }
    }
  }
}
