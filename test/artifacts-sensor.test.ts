// artifact_get from a real reference sensor process against a real `picket serve`, and the `picket
// artifacts` CLI against the same server: upload, list, download, export, ingestion keys.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../src/catalogue/index.js';
import { CommandRunner } from '../src/sensor/commands/command-runner.js';
import type { NetworkIsolation } from '../src/sensor/commands/network-isolation.js';
import { runCli, startSensorProcess, startServerProcess, type ManagedProcess, type ServerProcess } from './harness/processes.js';
import { apiClient } from './harness/server.js';
import { waitFor } from './harness/wait.js';

interface Envelope { routing: Record<string, unknown>; event: Record<string, unknown> }
interface Task { task_id: string; state: string; error: number | null; answer: Envelope | null }

const FAR_S = 9_999_999_999;
const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const CLEAN_ENV = { PICKET_URL: '', PICKET_API_KEY: '', PICKET_DATA: '', PICKET_DATA_DIR: '', PICKET_CA: '' };

describe('artifact_get on a real reference sensor, and picket artifacts', () => {
  let server: ServerProcess;
  let api: ReturnType<typeof apiClient>;
  let sensor: ManagedProcess | undefined;
  let sid = '';
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'picket-artifact-'));
    dirs.push(d);
    return d;
  };
  const cli = (args: string[]) => runCli([...args, '--data', server.dataDir], { env: CLEAN_ENV, cwd: tmp() });

  beforeAll(async () => {
    server = await startServerProcess();
    api = apiClient(server.url, server.credentials.api_key);
    const created = await cli(['artifacts', 'keys', 'create', 'sensors', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const ingestionKey = (JSON.parse(created.stdout) as { key: string }).key;
    const stateDir = tmp();
    sensor = startSensorProcess({ url: server.url, key: server.credentials.installation_key, stateDir, hostname: 'artifact-host', env: { PICKET_INGESTION_KEY: ingestionKey } });
    sid = await waitFor(() => (existsSync(path.join(stateDir, 'identity.json')) ? (JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as { sid: string }).sid : undefined), { message: 'sensor enrolled' });
    await waitFor(async () => (await api<{ is_online: boolean }>('GET', `/v1/${sid}`)).body.is_online, { message: 'sensor online' });
  }, 60_000);

  afterAll(async () => {
    sensor?.kill('SIGKILL');
    server?.kill('SIGTERM');
    await server?.exited;
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
  });

  async function task(command: string): Promise<Task> {
    const res = await api<{ tasks: Task[] }>('POST', `/v1/${sid}`, { tasks: [command], investigation_id: `inv-${Math.random().toString(36).slice(2)}` });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = res.body.tasks[0]!.task_id;
    return waitFor(async () => {
      const t = (await api<Task>('GET', `/v1/tasks/${id}`)).body;
      return t.state === 'answered' ? t : undefined;
    }, { timeoutMs: 30_000, message: `answer to ${command}` });
  }

  async function artifactStream(): Promise<Envelope[]> {
    return (await api<{ events: Envelope[] }>('GET', `/v1/insight/${server.credentials.oid}/stream/artifact?start=0&end=${FAR_S}&limit=10000`)).body.events;
  }

  let uploaded: { logId: string; bytes: Buffer; file: string };
  it('artifact_get uploads the file in parts; the cloud stores it once and emits ingest with the sensor as source', async () => {
    const file = path.join(tmp(), 'capture.pcap');
    const bytes = randomBytes(20 * MiB); // over 15 MiB: two parts
    writeFileSync(file, bytes);
    const t = await task(`artifact_get --file-path "${file}" --days-retention 7 --type pcap`);
    expect(t.error).toBe(0);
    expect(t.answer!.routing.event_type).toBe('RECEIPT');
    expect(validateEvent(t.answer, { produced: true }).errors).toEqual([]);
    expect(t.answer!.event).toMatchObject({ ERROR: 0, FILE_PATH: file, SIZE: bytes.length, HASH_MD5: md5(bytes) });
    const logId = String(t.answer!.event.LOG_ID);

    const ingests = await waitFor(async () => {
      const found = (await artifactStream()).filter((e) => e.routing.event_type === 'ingest' && e.routing.log_id === logId);
      return found.length > 0 ? found : undefined;
    });
    expect(ingests).toHaveLength(1);
    expect(validateEvent(ingests[0], { produced: true }).errors).toEqual([]);
    expect(ingests[0]!.routing).toMatchObject({ oid: server.credentials.oid, log_type: 'pcap' });
    expect(ingests[0]!.event).toEqual({ size: bytes.length, source: sid, original_path: file, original_md5: md5(bytes) });
    uploaded = { logId, bytes, file };
  }, 60_000);

  it('artifact_get answers ERROR 2 for a missing file and 87 without --file-path', async () => {
    const missing = await task('artifact_get --file-path /nonexistent/picket/file');
    expect(missing.error).toBe(2);
    expect(missing.answer!.routing.event_type).toBe('RECEIPT');
    expect((await task('artifact_get')).error).toBe(87);
  }, 60_000);

  it('a sensor without an ingestion key answers artifact_get with ERROR 5', async () => {
    const stateDir = tmp();
    const isolation: NetworkIsolation = { isolate: async () => ({ error: 0 }), rejoin: async () => ({ error: 0 }), isIsolated: async () => false };
    const runner = new CommandRunner({
      stateDir, cloud: { host: '127.0.0.1', port: server.port }, allowRun: false, isolation,
      selfTest: async () => [], applyCollector: () => undefined, isolationChanged: () => undefined,
    });
    const file = path.join(stateDir, 'x.txt');
    writeFileSync(file, 'x');
    const answer = await runner.execute(`artifact_get --file-path ${file}`);
    expect(answer).toMatchObject({ eventType: 'RECEIPT', payload: { ERROR: 5 } });
  });

  it('picket artifacts list, get and export work against the uploaded artifact', async () => {
    const list = await cli(['artifacts', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const artifacts = JSON.parse(list.stdout) as Array<{ log_id: string; md5: string; source: string }>;
    expect(artifacts.find((a) => a.log_id === uploaded.logId)).toMatchObject({ md5: md5(uploaded.bytes), source: sid });

    const out = path.join(tmp(), 'copy.pcap');
    const get = await cli(['artifacts', 'get', uploaded.logId, '--output', out, '--json']);
    expect(get.code, get.stderr).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ md5: md5(uploaded.bytes), size: uploaded.bytes.length });
    expect(readFileSync(out).equals(uploaded.bytes)).toBe(true);

    const pkg = path.join(tmp(), 'export.tar.gz');
    const exp = await cli(['artifacts', 'export', uploaded.logId, '--output', pkg, '--json']);
    expect(exp.code, exp.stderr).toBe(0);
    const exportId = (JSON.parse(exp.stdout) as { export_id: string; state: string }).export_id;
    const entries = new Map<string, Buffer>();
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => { entries.set(header.name, Buffer.concat(chunks)); next(); });
    });
    await pipeline(Readable.from([readFileSync(pkg)]), createGunzip(), extract);
    expect([...entries.keys()]).toEqual([`${uploaded.logId}/capture.pcap`]);
    expect(entries.get(`${uploaded.logId}/capture.pcap`)!.equals(uploaded.bytes)).toBe(true);

    const completes = await waitFor(async () => {
      const found = (await artifactStream()).filter((e) => e.routing.event_type === 'export_complete' && e.event.export_id === exportId);
      return found.length > 0 ? found : undefined;
    });
    expect(completes).toHaveLength(1);
    expect(validateEvent(completes[0], { produced: true }).errors).toEqual([]);
    expect(completes[0]!.routing).toMatchObject({ log_id: uploaded.logId, log_type: 'pcap' });
    expect(completes[0]!.event).toMatchObject({ export_id: exportId, source: sid, original_path: uploaded.file });

    const keys = await cli(['artifacts', 'keys', 'list', '--json']);
    expect(keys.code).toBe(0);
    const listed = JSON.parse(keys.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((k) => k.name)).toEqual(['sensors']);
    expect(Object.keys(listed[0]!).sort()).toEqual(['created', 'created_ts', 'key_id', 'name', 'oid']);
  }, 60_000);
});
