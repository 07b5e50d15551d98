// Wall-clock periods: schedule ticks and billing periods are aligned to multiples of their length since
// the Unix epoch (UTC), so every node and every restart agrees on where a period starts.

/** Start (Unix ms) of the period of length `lengthMs` that contains `ms`. */
export function periodStart(ms: number, lengthMs: number): number {
  return Math.floor(ms / lengthMs) * lengthMs;
}

/** `2024-05-30 00:00:00`: a UTC time as billing_record's `ts` writes it. */
export function sqlDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}
