// Artifacts end to end on a real server (real SQLite, real files, real HTTP): ingestion keys, POST /ingest
// with parts and idempotency, download, export, retention — and the `artifact` stream that records them.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent, validatePayload } from '../src/catalogue/index.js';
import { gaps } from '../src/sources/artifacts/artifact-ingest.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope { routing: Record<string, unknown>; event: Record<string, unknown> }
interface Artifact { log_id: string; payload_id: string; size: number; md5: string; sha256: string; original_path: string; log_type: string; source: string }

const MiB = 1024 * 1024;
const FAR_S = 253_402_300_799;
const DAY_MS = 86_400_000;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('artifacts', () => {
  let s: TestServer;
  let api: ReturnType<typeof apiClient>;
  let clock = Date.now();
  let ingestionKey: string;

  async function upload(body: Buffer, headers: Record<string, string>, key = ingestionKey, oid = s.oid): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${s.url}/ingest`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${oid}:${key}`).toString('base64')}`, 'content-type': 'application/octet-stream', ...headers },
      body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function artifactStream(): Promise<Envelope[]> {
    const res = await api<{ events: Envelope[] }>('GET', `/v1/insight/${s.oid}/stream/artifact?start=0&end=${FAR_S}&limit=10000`);
    expect(res.status).toBe(200);
    return res.body.events;
  }

  async function listArtifacts(): Promise<Artifact[]> {
    const res = await api<{ artifacts: Artifact[] }>('GET', `/v1/insight/${s.oid}/artifacts?limit=1000`);
    expect(res.status).toBe(200);
    return res.body.artifacts;
  }

  async function download(logId: string): Promise<{ status: number; bytes: Buffer; md5: string | null }> {
    const res = await fetch(`${s.url}/v1/insight/${s.oid}/artifacts/${logId}`, { headers: { authorization: `Bearer ${s.apiKey}` } });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), md5: res.headers.get('x-picket-md5') };
  }

  /** Every file under the data directory's artifacts/ (content, parts, exports). */
  function filesOnDisk(): string[] {
    const root = path.join(s.dataDir, 'artifacts');
    if (!existsSync(root)) return [];
    return (readdirSync(root, { recursive: true, withFileTypes: true }) as Array<{ isFile(): boolean; parentPath: string; name: string }>)
      .filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name));
  }

  function expectValid(e: Envelope): void {
    const result = validateEvent(e, { produced: true });
    expect(result.errors).toEqual([]);
    expect(validatePayload(String(e.routing.event_type), e.event).valid).toBe(true);
  }

  beforeAll(async () => {
    s = await startTestServer({}, { now: () => clock });
    api = apiClient(s.url, s.apiKey);
    const created = await api<{ key: string; key_id: string; name: string }>('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'uploads' });
    expect(created.status).toBe(201);
    ingestionKey = created.body.key;
  });

  afterAll(async () => {
    await s?.close();
  });

  it('lists ingestion keys without their secrets, stored hashed; a deleted key no longer uploads', async () => {
    const extra = await api<{ key: string; key_id: string }>('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'temporary' });
    expect(extra.status).toBe(201);
    expect((await api('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'temporary' })).status).toBe(409);
    const list = await api<{ keys: Array<Record<string, unknown>> }>('GET', `/v1/insight/${s.oid}/ingestion_keys`);
    expect(list.body.keys.map((k) => k.name).sort()).toEqual(['temporary', 'uploads']);
    const secret = extra.body.key.split('.')[1]!;
    expect(JSON.stringify(list.body)).not.toContain(secret);
    const stored = await s.server.store.getIngestionKey(extra.body.key_id);
    expect(stored?.secret_hash).toBe(createHash('sha256').update(secret).digest('hex'));

    expect((await upload(Buffer.from('x'), { 'lc-payload-id': 'with-temp-key' }, extra.body.key)).status).toBe(200);
    expect((await api('DELETE', `/v1/insight/${s.oid}/ingestion_keys?name=temporary`)).status).toBe(200);
    const after = await upload(Buffer.from('y'), { 'lc-payload-id': 'after-delete' }, extra.body.key);
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
  });

  it('a wrong ingestion key is refused with 401 and stores nothing', async () => {
    const before = { files: filesOnDisk(), artifacts: await listArtifacts(), events: await artifactStream() };
    const wrongSecret = `${ingestionKey.split('.')[0]}.${randomBytes(24).toString('base64url')}`;
    const otherOrg = '00000000-0000-4000-8000-000000000001';
    for (const [key, oid] of [[wrongSecret, s.oid], [ingestionKey, otherOrg], ['not-a-key', s.oid]] as const) {
      for (const part of [undefined, '0', 'done']) {
        const res = await upload(randomBytes(1024), { 'lc-payload-id': 'refused', 'lc-path': Buffer.from('/tmp/x').toString('base64'), ...(part ? { 'lc-part': part } : {}) }, key, oid);
        expect(res.status).toBe(401);
        expect(res.body).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      }
    }
    const anonymous = await fetch(`${s.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'x' });
    expect(anonymous.status).toBe(401);
    expect(filesOnDisk()).toEqual(before.files);
    expect(await listArtifacts()).toEqual(before.artifacts);
    expect(await artifactStream()).toEqual(before.events);
    expect(await s.server.store.listArtifactParts(s.oid, 'refused')).toEqual([]);
  });

  let big: { bytes: Buffer; logId: string };
  it('a 40 MiB file in three parts becomes one artifact with the right md5; a repeated part changes nothing; ingest once', async () => {
    const eventsBefore = await artifactStream();
    const bytes = randomBytes(40 * MiB);
    const parts = [bytes.subarray(0, 15 * MiB), bytes.subarray(15 * MiB, 30 * MiB), bytes.subarray(30 * MiB)];
    const headers = { 'lc-payload-id': 'capture-0001', 'lc-source': 'sensor-7', 'lc-hint': 'pcap', 'lc-path': Buffer.from('/data/pcap/dat.pcap').toString('base64') };

    // Numbered from 0, as the platform's clients do (platform-reference.md §6.1), the last part `done`.
    expect((await upload(parts[0]!, { ...headers, 'lc-part': '0' })).body).toMatchObject({ status: 'part_received', part: 0 });
    expect((await upload(parts[1]!, { ...headers, 'lc-part': '1' })).body).toMatchObject({ status: 'part_received', part: 1 });
    // The same part again, even with other bytes, is acknowledged and changes nothing.
    const again = await upload(randomBytes(15 * MiB), { ...headers, 'lc-part': '1' });
    expect(again).toMatchObject({ status: 200, body: { status: 'part_duplicate', part: 1 } });
    expect(await artifactStream()).toEqual(eventsBefore);

    const done = await upload(parts[2]!, { ...headers, 'lc-part': 'done' });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: 'stored', payload_id: 'capture-0001', size: 40 * MiB, md5: md5(bytes) });
    const logId = String(done.body.log_id);

    // The whole upload again: acknowledged, same artifact, nothing new.
    expect((await upload(parts[0]!, { ...headers, 'lc-part': '0' })).body).toMatchObject({ status: 'duplicate', log_id: logId });
    expect((await upload(parts[2]!, { ...headers, 'lc-part': 'done' })).body).toMatchObject({ status: 'duplicate', log_id: logId });

    const listed = (await listArtifacts()).filter((a) => a.payload_id === 'capture-0001');
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ log_id: logId, size: 40 * MiB, md5: md5(bytes), log_type: 'pcap', source: 'sensor-7', original_path: '/data/pcap/dat.pcap' });
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(listed[0]!.sha256).toBe(sha);
    expect(existsSync(path.join(s.dataDir, 'artifacts', sha.slice(0, 2), sha))).toBe(true);
    expect(filesOnDisk().some((f) => f.includes(`${path.sep}parts${path.sep}`))).toBe(false);

    const got = await download(logId);
    expect(got.status).toBe(200);
    expect(got.md5).toBe(md5(bytes));
    expect(got.bytes.equals(bytes)).toBe(true);

    const ingests = (await artifactStream()).filter((e) => e.routing.event_type === 'ingest' && e.routing.log_id === logId);
    expect(ingests).toHaveLength(1);
    expectValid(ingests[0]!);
    expect(ingests[0]!.routing).toMatchObject({ oid: s.oid, log_type: 'pcap' });
    expect(ingests[0]!.event).toEqual({ size: 40 * MiB, source: 'sensor-7', original_path: '/data/pcap/dat.pcap', original_md5: md5(bytes) });
    big = { bytes, logId };
  }, 60_000);

  it('a done with a part missing is refused with 409 and completes once the part arrives', async () => {
    const headers = { 'lc-payload-id': 'gappy' };
    expect((await upload(Buffer.from('one'), { ...headers, 'lc-part': '0' })).status).toBe(200);
    expect((await upload(Buffer.from('three'), { ...headers, 'lc-part': '2' })).status).toBe(200);
    const early = await upload(Buffer.from('!'), { ...headers, 'lc-part': 'done' });
    expect(early).toMatchObject({ status: 409, body: { code: 'CONFLICT' } });
    expect(String(early.body.error)).toContain('missing part(s) 1:');
    expect((await upload(Buffer.from('two'), { ...headers, 'lc-part': '1' })).status).toBe(200);
    const done = await upload(Buffer.from('!'), { ...headers, 'lc-part': 'done' });
    expect(done.body).toMatchObject({ status: 'stored', md5: md5(Buffer.from('onetwothree!')) });
    expect((await download(String(done.body.log_id))).bytes.toString()).toBe('onetwothree!');
  });

  it('a missing first part (0) is detected: done is refused with 409 naming it, nothing is stored, and the upload completes once it arrives', async () => {
    const eventsBefore = await artifactStream();
    const headers = { 'lc-payload-id': 'no-first-part', 'lc-path': Buffer.from('/var/log/big.log').toString('base64') };
    // Parts 1 and 2 arrive, part 0 was lost: without it the artifact would silently lack its beginning.
    expect((await upload(Buffer.from('-second'), { ...headers, 'lc-part': '1' })).body).toMatchObject({ status: 'part_received', part: 1 });
    expect((await upload(Buffer.from('-third'), { ...headers, 'lc-part': '2' })).body).toMatchObject({ status: 'part_received', part: 2 });
    const early = await upload(Buffer.from('-last'), { ...headers, 'lc-part': 'done' });
    expect(early).toMatchObject({ status: 409, body: { code: 'CONFLICT' } });
    expect(String(early.body.error)).toContain('missing part(s) 0:');
    expect((await listArtifacts()).map((a) => a.payload_id)).not.toContain('no-first-part');
    expect(await artifactStream()).toEqual(eventsBefore);
    // Retrying done alone changes nothing; once part 0 is there, done stores the whole file in order.
    expect((await upload(Buffer.from('-last'), { ...headers, 'lc-part': 'done' })).status).toBe(409);
    expect((await upload(Buffer.from('first'), { ...headers, 'lc-part': '0' })).body).toMatchObject({ status: 'part_received', part: 0 });
    const done = await upload(Buffer.from('-last'), { ...headers, 'lc-part': 'done' });
    const whole = Buffer.from('first-second-third-last');
    expect(done).toMatchObject({ status: 200, body: { status: 'stored', size: whole.length, md5: md5(whole) } });
    expect((await download(String(done.body.log_id))).bytes.equals(whole)).toBe(true);
    const ingests = (await artifactStream()).filter((e) => e.routing.event_type === 'ingest' && e.routing.log_id === done.body.log_id);
    expect(ingests).toHaveLength(1);
  });

  it('a done with no numbered part before it is missing part 0 (409), never a one-part artifact', async () => {
    const early = await upload(Buffer.from('only the end'), { 'lc-payload-id': 'done-only', 'lc-part': 'done' });
    expect(early).toMatchObject({ status: 409, body: { code: 'CONFLICT' } });
    expect(String(early.body.error)).toContain('missing part(s) 0:');
    expect((await listArtifacts()).map((a) => a.payload_id)).not.toContain('done-only');
    expect(gaps([])).toEqual([0]);
    expect(gaps([0])).toEqual([]);
    expect(gaps([2, 0])).toEqual([1]);
    expect(gaps([1, 3])).toEqual([0, 2]);
    expect(gaps(Array.from({ length: 500 }, (_, i) => i + 1000))).toHaveLength(100);
  });

  it('the same part sent twice at once is kept once: the copy acknowledged as received is the one stored', async () => {
    const a = randomBytes(100_000);
    const b = randomBytes(90_000);
    const headers = { 'lc-payload-id': 'racing', 'lc-part': '0' };
    const answers = await Promise.all([upload(a, headers), upload(b, headers)]);
    expect(answers.map((r) => r.body.status).sort()).toEqual(['part_duplicate', 'part_received']);
    const kept = answers[0]!.body.status === 'part_received' ? a : b;
    const done = await upload(Buffer.from('z'), { 'lc-payload-id': 'racing', 'lc-part': 'done' });
    const expected = Buffer.concat([kept, Buffer.from('z')]);
    expect(done.body).toMatchObject({ status: 'stored', size: expected.length, md5: md5(expected) });
    const got = await download(String(done.body.log_id));
    expect(got.bytes.equals(expected)).toBe(true);
  });

  it('an export answers at once, packages the artifacts identical to the input, and emits export_complete once', async () => {
    const small = Buffer.from('hello artifact\n');
    const stored = await upload(small, { 'lc-payload-id': 'note-1', 'lc-path': Buffer.from('C:\\logs\\note.txt').toString('base64'), 'lc-hint': 'txt' });
    expect(stored.body.status).toBe('stored');
    const smallId = String(stored.body.log_id);

    const res = await api<{ export_id: string; state: string; log_ids: string[] }>('POST', `/v1/insight/${s.oid}/artifacts/export`, { log_ids: [big.logId, smallId] });
    expect(res.status).toBe(202);
    expect(res.body.log_ids).toEqual([big.logId, smallId]);
    expect(res.body.state).toBe('pending');
    const exportId = res.body.export_id;
    const route = `/v1/insight/${s.oid}/artifacts/exports/${exportId}`;
    await waitFor(async () => (await api<{ state: string }>('GET', `${route}?status=true`)).body.state === 'ready', { message: 'export ready' });

    const pkg = await fetch(`${s.url}${route}`, { headers: { authorization: `Bearer ${s.apiKey}` } });
    expect(pkg.status).toBe(200);
    expect(pkg.headers.get('content-type')).toBe('application/gzip');
    const entries = new Map<string, Buffer>();
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => { entries.set(header.name, Buffer.concat(chunks)); next(); });
    });
    await pipeline(Readable.fromWeb(pkg.body as never), createGunzip(), extract);
    expect([...entries.keys()]).toEqual([`${big.logId}/dat.pcap`, `${smallId}/note.txt`]);
    expect(entries.get(`${big.logId}/dat.pcap`)!.equals(big.bytes)).toBe(true);
    expect(entries.get(`${smallId}/note.txt`)!.equals(small)).toBe(true);

    const completes = await waitFor(async () => {
      const found = (await artifactStream()).filter((e) => e.routing.event_type === 'export_complete' && e.event.export_id === exportId);
      return found.length > 0 ? found : null;
    });
    expect(completes).toHaveLength(1);
    expectValid(completes[0]!);
    await s.server.artifacts.exports.idle();
    expect((await artifactStream()).filter((e) => e.event.export_id === exportId)).toHaveLength(1);

    expect((await api('GET', `/v1/insight/${s.oid}/artifacts/exports/00000000-0000-4000-8000-00000000000f`)).status).toBe(404);
    expect((await api('POST', `/v1/insight/${s.oid}/artifacts/export`, { log_ids: ['00000000-0000-4000-8000-00000000000f'] })).status).toBe(404);
  }, 60_000);

  it('an export still being packaged answers 409', async () => {
    // Recorded as pending without a packager running: what a download sees before the package exists.
    const exportId = '00000000-0000-4000-8000-0000000000aa';
    await s.server.store.createArtifactExport({ export_id: exportId, oid: s.oid, log_ids: [big.logId], state: 'pending', size: 0, error: null, created: clock, completed: null });
    const res = await api('GET', `/v1/insight/${s.oid}/artifacts/exports/${exportId}`);
    expect(res).toMatchObject({ status: 409, body: { code: 'NOT_READY', status: 409 } });
  });

  it('artifacts past their retention are deleted from store and disk by the janitor; shared content stays while referenced', async () => {
    const content = randomBytes(4096);
    const sha = createHash('sha256').update(content).digest('hex');
    const short = await upload(content, { 'lc-payload-id': 'short-lived', 'lc-retention-days': '1' });
    const long = await upload(content, { 'lc-payload-id': 'long-lived', 'lc-retention-days': '10' });
    const file = path.join(s.dataDir, 'artifacts', sha.slice(0, 2), sha);
    expect(existsSync(file)).toBe(true);

    clock += 2 * DAY_MS;
    const first = await s.server.artifacts.janitor.sweep();
    expect(first.artifacts).toContain(short.body.log_id);
    expect(first.artifacts).not.toContain(long.body.log_id);
    expect((await download(String(short.body.log_id))).status).toBe(404);
    expect((await download(String(long.body.log_id))).bytes.equals(content)).toBe(true);
    expect(existsSync(file)).toBe(true);

    clock += 9 * DAY_MS;
    const second = await s.server.artifacts.janitor.sweep();
    expect(second.artifacts).toContain(long.body.log_id);
    expect(existsSync(file)).toBe(false);
    expect((await listArtifacts()).map((a) => a.payload_id)).not.toContain('long-lived');
    // The 40 MiB capture has the default 30 days: still there.
    expect((await download(big.logId)).status).toBe(200);
  });
});

describe('artifact bounds and restarts', () => {
  it('refuses a request body over 16 MiB and an artifact over PICKET_ARTIFACT_MAX_BYTES with 413, storing nothing', async () => {
    const s = await startTestServer({ artifactMaxBytes: 20 * MiB });
    try {
      const api = apiClient(s.url, s.apiKey);
      const key = (await api<{ key: string }>('POST', `/v1/insight/${s.oid}/ingestion_keys`, { name: 'k' })).body.key;
      const post = async (body: Buffer, headers: Record<string, string>) => {
        const res = await fetch(`${s.url}/ingest`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${s.oid}:${key}`).toString('base64')}`, 'content-type': 'application/octet-stream', ...headers },
          body,
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      expect(await post(Buffer.alloc(16 * MiB + 1), { 'lc-payload-id': 'huge' })).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
      expect((await post(Buffer.alloc(15 * MiB), { 'lc-payload-id': 'multi', 'lc-part': '0' })).status).toBe(200);
      expect(await post(Buffer.alloc(6 * MiB), { 'lc-payload-id': 'multi', 'lc-part': 'done' })).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
      expect((await api<{ artifacts: unknown[] }>('GET', `/v1/insight/${s.oid}/artifacts`)).body.artifacts).toEqual([]);
    } finally {
      await s.close();
    }
  }, 60_000);

  it('an export left pending by a stop is packaged on the next start, with export_complete once', async () => {
    const first = await startTestServer();
    const dataDir = first.dataDir;
    const api1 = apiClient(first.url, first.apiKey);
    const key = (await api1<{ key: string }>('POST', `/v1/insight/${first.oid}/ingestion_keys`, { name: 'k' })).body.key;
    const res = await fetch(`${first.url}/ingest`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${first.oid}:${key}`).toString('base64')}`, 'lc-path': Buffer.from('/x/a.bin').toString('base64') }, body: 'payload' });
    const logId = String(((await res.json()) as { log_id: string }).log_id);
    const exportId = '00000000-0000-4000-8000-0000000000bb';
    // As if the node had stopped mid-packaging: the export is recorded, no package exists.
    await first.server.store.createArtifactExport({ export_id: exportId, oid: first.oid, log_ids: [logId], state: 'pending', size: 0, error: null, created: Date.now(), completed: null });
    await first.close({ keepData: true });

    const second = await startTestServer({ dataDir });
    try {
      const api2 = apiClient(second.url, second.apiKey);
      await waitFor(async () => (await api2<{ state: string }>('GET', `/v1/insight/${second.oid}/artifacts/exports/${exportId}?status=true`)).body.state === 'ready', { message: 'resumed export ready' });
      await second.server.artifacts.exports.idle();
      const events = (await api2<{ events: Envelope[] }>('GET', `/v1/insight/${second.oid}/stream/artifact?start=0&end=${FAR_S}`)).body.events;
      const completes = events.filter((e) => e.event.export_id === exportId);
      expect(completes).toHaveLength(1);
      expect(validateEvent(completes[0], { produced: true }).errors).toEqual([]);
      expect(completes[0]!.routing).toMatchObject({ log_id: logId, event_type: 'export_complete' });
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
