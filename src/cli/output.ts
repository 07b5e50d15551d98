// Output of the management commands: aligned tables and "key: value" blocks for people, JSON (--json)
// for programs. Times print as ISO 8601 (UTC).
import { architectureName, platformName } from '../domain/platform.js';

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Pretty JSON of one value (a record, a list) for --json. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** ISO 8601 of a Unix ms time; "-" when there is none. */
export function isoTime(ms: number | null | undefined): string {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? '-' : new Date(ms).toISOString();
}

export function platformLabel(code: number): string {
  return platformName(code);
}

export function archLabel(code: number): string {
  return architectureName(code);
}

export function yesNo(v: boolean): string {
  return v ? 'yes' : 'no';
}

/** Columns padded to their widest cell; the last column is not padded. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function printTable(headers: string[], rows: string[][], empty = '(none)'): void {
  if (rows.length === 0) {
    out(empty);
    return;
  }
  out(formatTable(headers, rows));
}

/** "key: value" lines with the keys aligned. */
export function printFields(fields: Array<[string, string]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  out(fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`).join('\n'));
}

/** A one-line summary of an event payload: `KEY=value` pairs, nested objects as compact JSON, cut at `max`. */
export function summarizePayload(event: unknown, max = 160): string {
  if (event === null || typeof event !== 'object') return event === undefined ? '' : JSON.stringify(event);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(event as Record<string, unknown>)) {
    let value: string;
    if (typeof v === 'string') value = /[\s"]/.test(v) || v === '' ? JSON.stringify(v) : v;
    else value = JSON.stringify(v) ?? 'null';
    parts.push(`${k}=${value}`);
  }
  const text = parts.join(' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
