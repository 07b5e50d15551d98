// `ingest` and `export_complete` are stored exactly once even when a crash falls between storing the
// artifact (or finishing the export) and storing its event: the next start announces what was missed,
// and only that.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { validatePayload } from '../src/catalogue/index.js';
import { apiClient, startTestServer, type TestServer } from './harness/server.js';
import { waitFor } from './harness/wait.js';

describe('artifact events across a crash', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function artifactStream(s: TestServer): Promise<Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }>> {
    const now = Math.floor(Date.now() / 1000);
    const res = await apiClient(s.url, s.apiKey)<{ events: Array<{ routing: Record<string, unknown>; event: Record<string, unknown> }> }>('GET', `/v1/insight/${s.oid}/stream/artifact?start=0&end=${now + 60}`);
    return res.body.events;
  }

  it('announces at the next start what a crash left unannounced, once', async () => {
    let s = await startTestServer();
    const { dataDir, port, oid } = s;
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    // The state a crash leaves behind: an artifact and a ready export stored, their events not.
    const logId = randomUUID();
    const exportId = randomUUID();
    const t = Date.now();
    await s.server.store.createArtifact({ log_id: logId, oid, payload_id: 'crashed', log_type: 'pcap', source: 'sensor-1', original_path: '/tmp/x.pcap', size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32), created: t, expires: t + 86_400_000 });
    await s.server.store.createArtifactExport({ export_id: exportId, oid, log_ids: [logId], state: 'pending', size: 0, error: null, created: t, completed: null });
    await s.server.store.finishArtifactExport(exportId, { state: 'ready', size: 99 }, t);
    await s.close({ keepData: true });

    for (let restart = 0; restart < 2; restart++) {
      s = await startTestServer({ dataDir, port });
      const current = s;
      cleanups.push(() => current.close({ keepData: true }));
      await waitFor(async () => (await artifactStream(current)).length === 2, { message: 'ingest and export_complete announced' });
      const events = await artifactStream(s);
      expect(events.map((e) => e.routing.event_type).sort()).toEqual(['export_complete', 'ingest']);
      const ingest = events.find((e) => e.routing.event_type === 'ingest')!;
      expect(ingest.routing).toMatchObject({ oid, log_id: logId, log_type: 'pcap' });
      expect(validatePayload('ingest', ingest.event)).toMatchObject({ valid: true });
      const done = events.find((e) => e.routing.event_type === 'export_complete')!;
      expect(validatePayload('export_complete', done.event)).toMatchObject({ valid: true });
      expect(done.event.size).toBe(99);
      await s.close({ keepData: true });
    }
  });
});
