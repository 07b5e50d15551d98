// A test switch for multi-process tests of time-driven behaviour (schedule ticks, billing periods):
// PICKET_DEBUG_CLOCK_FILE names a file holding a number of milliseconds that this process adds to the
// system clock. The file is re-read every 50 ms, so a test moves every node's clock by rewriting it. Not
// for production: documented in docs/operations.md as a testing aid only.
import { readFileSync } from 'node:fs';

const REREAD_MS = 50;

export function debugClock(file: string): { now: () => number; stop: () => void } {
  let offset = 0;
  const read = (): void => {
    try {
      const n = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(n)) offset = n;
    } catch {
      // Missing or unreadable: keep the last offset.
    }
  };
  read();
  const timer = setInterval(read, REREAD_MS);
  timer.unref();
  return { now: () => Date.now() + offset, stop: () => clearInterval(timer) };
}
