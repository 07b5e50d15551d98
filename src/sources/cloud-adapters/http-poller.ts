// HTTP poller: GETs a JSON API on an interval with an auth header, reads the records at a path of the
// response, stores them under the adapter's sensor, then moves its cursor (a `next` token of the response,
// else a field of the last record), persisted in the store so a restart resumes where it stopped. The
// cursor moves only after the records are stored: a crash in between delivers the page again (at least
// once). A page that moved the cursor is followed at once; otherwise the next poll waits `interval`.
import type { AdapterRecord } from './adapter-sensor.js';
import type { AdapterContext, AdapterSource } from './adapter-runner.js';
import type { HttpPollerSettings } from './adapter-config.js';
import { valueAt } from '../usp/usp-mapping.js';

/** Most pages read back to back before the poller waits its interval (a cursor that never stops moving). */
const MAX_PAGES_IN_A_ROW = 100;

export class HttpPoller implements AdapterSource {
  private loop: Promise<void> | undefined;

  constructor(
    private readonly settings: HttpPollerSettings,
    private readonly ctx: AdapterContext,
  ) {}

  async start(): Promise<void> {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    await this.loop;
  }

  private async run(): Promise<void> {
    const { ctx } = this;
    const { oid, name } = ctx.config;
    let cursor = await ctx.pipeline.store.getCloudAdapterCursor(oid, name);
    let pagesInARow = 0;
    while (!ctx.signal.aborted) {
      let delay: number;
      try {
        const page = await this.poll(cursor);
        if (ctx.signal.aborted) break;
        const stored = await ctx.sensor.deliver(page.records);
        const moved = page.cursor !== null && page.cursor !== cursor;
        if (moved) {
          cursor = page.cursor;
          await ctx.pipeline.store.setCloudAdapterCursor(oid, name, cursor);
        }
        ctx.succeeded(stored);
        pagesInARow = moved && page.records.length > 0 && pagesInARow < MAX_PAGES_IN_A_ROW ? pagesInARow + 1 : 0;
        delay = pagesInARow > 0 ? 0 : this.settings.interval * 1000;
      } catch (err) {
        if (ctx.signal.aborted) break;
        delay = ctx.failed((err as Error).message);
      }
      await ctx.wait(delay);
    }
  }

  /** One GET: the records of the page and the cursor after it (null: unchanged). */
  private async poll(cursor: string | null): Promise<{ records: AdapterRecord[]; cursor: string | null }> {
    const s = this.settings;
    const url = new URL(s.url);
    if (cursor !== null) url.searchParams.set(s.cursor_param, cursor);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (s.auth_value !== null) headers[s.auth_header] = s.auth_value;
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: AbortSignal.any([this.ctx.signal, AbortSignal.timeout(s.timeout * 1000)]) });
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message;
      throw new Error(`GET ${s.url} failed: ${cause ?? (err as Error).message}`);
    }
    const body = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}${body.trim() ? `: ${body.trim().slice(0, 300)}` : ''}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new Error(`the response is not JSON: ${body.slice(0, 100)}`);
    }
    const list = s.records_path === '' ? json : valueAt(json as Record<string, unknown>, s.records_path);
    if (!Array.isArray(list)) throw new Error(`the response has no array of records at "${s.records_path || '(the response itself)'}"`);
    const records: AdapterRecord[] = list.map((r: unknown) =>
      typeof r === 'object' && r !== null && !Array.isArray(r) ? { j: r as Record<string, unknown> } : typeof r === 'string' ? { t: r } : { j: { value: r } },
    );
    return { records, cursor: this.nextCursor(json, list) };
  }

  private nextCursor(json: unknown, list: unknown[]): string | null {
    const s = this.settings;
    if (s.next_path !== null && typeof json === 'object' && json !== null) {
      const token = valueAt(json as Record<string, unknown>, s.next_path);
      if ((typeof token === 'string' && token !== '') || typeof token === 'number') return String(token);
    }
    const last = list.at(-1);
    if (s.cursor_field !== null && typeof last === 'object' && last !== null) {
      const value = valueAt(last as Record<string, unknown>, s.cursor_field);
      if ((typeof value === 'string' && value !== '') || typeof value === 'number') return String(value);
    }
    return null;
  }
}
