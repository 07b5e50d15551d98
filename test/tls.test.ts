// With a certificate and key the API is served over https and the sensor gateway over wss, on one port.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { startTestServer, type TestServer } from './harness/server.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const available = haveOpenssl();
if (!available && process.env.CI === 'true') throw new Error('openssl is required for the TLS tests in CI');
if (!available) console.warn('skipping TLS tests: openssl not found (they never skip with CI=true)');

describe.skipIf(!available)('TLS: https API and wss sensor gateway', () => {
  let dir: string;
  let t: TestServer;
  let ca: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'picket-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    ca = readFileSync(cert);
    t = await startTestServer({ tlsCert: cert, tlsKey: key });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the API over https', async () => {
    expect(t.url.startsWith('https://')).toBe(true);
    const body = await new Promise<string>((resolve, reject) => {
      https.get(`${t.url}/v1/orgs/${t.oid}`, { ca, headers: { authorization: `Bearer ${t.apiKey}` } }, (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (c: string) => (data += c)).on('end', () => resolve(data));
      }).on('error', reject);
    });
    expect(JSON.parse(body)).toMatchObject({ oid: t.oid });
  });

  it('enrolls a sensor and acknowledges its events over wss', async () => {
    const client = new ProtocolClient(t.url, 'msgpack', { ca });
    await client.hello({ installation_key: t.installationKey });
    const welcome = await client.welcome();
    client.sendEvents(1, telemetry(5));
    await client.waitForAck(1);
    const page = await t.server.store.queryTimeline({ oid: t.oid, sid: welcome.sid, start: 0, end: 9_999_999_999_999, limit: 100, eventType: 'NEW_PROCESS' });
    expect(page.events).toHaveLength(5);
    client.close();
    await client.closed;
  });

  it('refuses a client that does not trust the certificate', async () => {
    const client = new ProtocolClient(t.url);
    await expect(client.opened).rejects.toThrow(/self.signed|certificate/i);
  });
});
