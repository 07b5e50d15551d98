// SYNC heartbeats: the server tells sensors the interval; each SYNC refreshes the sensor's alive time,
// which is written to the store in batches.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apiClient } from './harness/server.js';
import { startSensorProcess, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

describe('SYNC heartbeat', () => {
  let server: ServerProcess | undefined;
  let sensor: ManagedProcess | undefined;
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-sync-'));

  afterAll(async () => {
    sensor?.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    rmSync(stateDir, { recursive: true, force: true });
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('a sensor sends SYNC on the configured interval and each one refreshes alive', async () => {
    server = await startServerProcess({ env: { PICKET_SYNC_INTERVAL: '1' } });
    const api = apiClient(server.url, server.credentials.api_key);
    sensor = startSensorProcess({ url: server.url, key: server.credentials.installation_key, stateDir, hostname: 'sync-host' });
    const sid = await waitFor(async () => {
      const res = await api<{ sensors: Array<{ sid: string }> }>('GET', `/v1/sensors/${server!.credentials.oid}`);
      return res.body.sensors?.[0]?.sid;
    }, { message: 'enrollment' });
    const syncs = async (): Promise<Array<{ routing: { event_time: number } }>> => {
      const res = await api<{ events: Array<{ routing: { event_time: number } }> }>('GET', `/v1/insight/${server!.credentials.oid}/${sid}?start=0&end=9999999999&event_type=SYNC`);
      return res.body.events;
    };
    const seen = await waitFor(async () => ((await syncs()).length >= 3 ? syncs() : undefined), { timeoutMs: 10_000, message: 'three SYNC events' });
    const gaps = seen.slice(1).map((e, i) => e.routing.event_time - seen[i]!.routing.event_time);
    for (const gap of gaps) expect(gap).toBeGreaterThan(500);
    const lastSync = seen.at(-1)!.routing.event_time;
    // alive is persisted in batches; it catches up with the latest SYNC.
    await waitFor(async () => {
      const res = await api<{ info: { alive_ts: number } }>('GET', `/v1/${sid}`);
      return res.body.info.alive_ts >= lastSync - 1000;
    }, { timeoutMs: 5000, message: 'alive to follow SYNC' });
  });
});
