// The parts of cloud adapters that need no server: backoff and the grace period with an injected clock,
// webhook bodies (JSON, arrays, NDJSON), and configuration checks that name the field.
import { describe, expect, it } from 'vitest';
import { AdapterHealth } from '../src/sources/cloud-adapters/adapter-health.js';
import { cloudAdapterView, parseCloudAdapter } from '../src/sources/cloud-adapters/adapter-config.js';
import { parseWebhookBody } from '../src/sources/cloud-adapters/webhook-receiver.js';
import { CloudAdapterDefinitionError } from '../src/services/cloud-adapter-control.js';

describe('AdapterHealth', () => {
  it('doubles the wait per consecutive failure up to the cap, and expires only after the grace period of continuous failure', () => {
    let now = 1_000_000;
    const health = new AdapterHealth({ baseMs: 100, capMs: 1000 }, 5000, () => now, () => 1);
    expect(health.failed('a')).toEqual({ retryInMs: 100, expired: false });
    expect(health.failed('b').retryInMs).toBe(200);
    expect(health.failed('c').retryInMs).toBe(400);
    expect(health.failed('d').retryInMs).toBe(800);
    expect(health.failed('e').retryInMs).toBe(1000);
    now += 4999;
    expect(health.failed('f').expired).toBe(false);
    now += 1;
    expect(health.failed('g')).toEqual({ retryInMs: 1000, expired: true });
    expect(health.lastError).toBe('g');
    // A success starts the count and the grace period over.
    health.succeeded();
    now += 10;
    expect(health.failed('h')).toEqual({ retryInMs: 100, expired: false });
    expect(health.failingSince).toBe(now);
  });

  it('spreads waits between half and all of the ceiling (jitter)', () => {
    const health = new AdapterHealth({ baseMs: 1000, capMs: 1000 }, 1e9, () => 0, () => 0);
    expect(health.failed('x').retryInMs).toBe(500);
  });
});

describe('webhook bodies', () => {
  it('reads a JSON object, a JSON array of objects and NDJSON (by content type or as a fallback)', () => {
    expect(parseWebhookBody(Buffer.from('{"a":1}'), 'application/json')).toEqual([{ j: { a: 1 } }]);
    expect(parseWebhookBody(Buffer.from('[{"a":1},{"a":2}]'), undefined)).toEqual([{ j: { a: 1 } }, { j: { a: 2 } }]);
    expect(parseWebhookBody(Buffer.from('{"a":1}\n\n{"a":2}\n'), 'application/x-ndjson')).toEqual([{ j: { a: 1 } }, { j: { a: 2 } }]);
    expect(parseWebhookBody(Buffer.from('{"a":1}\n{"a":2}'), 'application/json')).toEqual([{ j: { a: 1 } }, { j: { a: 2 } }]);
  });

  it('refuses empty bodies, non-objects and bad lines, naming where', () => {
    expect(() => parseWebhookBody(Buffer.from('  '), 'application/json')).toThrow('empty');
    expect(() => parseWebhookBody(Buffer.from('[{"a":1},3]'), 'application/json')).toThrow('body item 1 is not a JSON object');
    expect(() => parseWebhookBody(Buffer.from('{"a":1}\n{oops'), 'application/x-ndjson')).toThrow('line 2 is not JSON');
  });
});

describe('cloud adapter configuration', () => {
  const fieldOf = (raw: Record<string, unknown>): string => {
    try {
      parseCloudAdapter(raw);
    } catch (err) {
      if (err instanceof CloudAdapterDefinitionError) return err.field;
      throw err;
    }
    return '(accepted)';
  };

  it('fills defaults per type and masks secrets in its view', () => {
    const poller = parseCloudAdapter({ name: 'p', type: 'http_poller', url: 'https://api.example/logs', auth_value: 'Bearer t0ken', interval: '5' });
    expect(poller).toMatchObject({ platform: 'json', hostname: 'p', grace_period: null, settings: { auth_header: 'Authorization', interval: 5, cursor_param: 'cursor', records_path: '' } });
    const syslog = parseCloudAdapter({ name: 's', type: 'syslog', port: 5514 });
    expect(syslog).toMatchObject({ platform: 'text', settings: { protocol: 'udp', host: '0.0.0.0', port: 5514 } });
    const view = cloudAdapterView({ ...poller, oid: 'o', enabled: true, disabled_at: null, disabled_error: null, created: 1, updated: 1 });
    expect(view.auth_value).toBe('********');
    expect(JSON.stringify(view)).not.toContain('t0ken');
  });

  it('names the field at fault', () => {
    expect(fieldOf({ type: 'webhook', secret: 'x'.repeat(16) })).toBe('name');
    expect(fieldOf({ name: 'bad name', type: 'webhook', secret: 'x'.repeat(16) })).toBe('name');
    expect(fieldOf({ name: 'w', type: 'webhook' })).toBe('secret');
    expect(fieldOf({ name: 'p', type: 'http_poller', url: 'ftp://x' })).toBe('url');
    expect(fieldOf({ name: 'p', type: 'http_poller', url: 'https://x', interval: 0 })).toBe('interval');
    expect(fieldOf({ name: 's', type: 'syslog', port: 70000 })).toBe('port');
    expect(fieldOf({ name: 's', type: 'syslog', port: 514, protocol: 'sctp' })).toBe('protocol');
    expect(fieldOf({ name: 's', type: 'syslog', port: 514, mapping: { parsing_re: '(' } })).toBe('mapping.parsing_re');
    expect(fieldOf({ name: 's', type: 'syslog', port: 514, platform: 'windows' })).toBe('platform');
    expect(fieldOf({ name: 'w', type: 'webhook', secret: 'x'.repeat(16), grace_period: -1 })).toBe('grace_period');
  });
});
