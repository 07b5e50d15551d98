// `picket artifacts list|get|export|keys`: artifacts uploaded through POST /ingest (docs/artifacts.md),
// their downloads and exports, and the ingestion keys uploaders authenticate with.
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, ApiRequestError, intArg, type ApiTarget, type ConnectionOptions } from '../api-client.js';
import { isoTime, out, printJson, printTable } from '../output.js';

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface ApiArtifact {
  log_id: string;
  payload_id: string;
  log_type: string;
  source: string;
  original_path: string;
  size: number;
  md5: string;
  created_ts: number;
  expires_ts: number;
}

interface ApiExport {
  export_id: string;
  state: 'pending' | 'ready' | 'failed';
  size: number;
  error: string | null;
  log_ids: string[];
}

interface ApiIngestionKey {
  key_id: string;
  name: string;
  created_ts: number;
}

/** Streams a GET to `file`; returns the response headers and the md5 of what was written. */
function download(target: ApiTarget, route: string, file: string): Promise<{ headers: http.IncomingHttpHeaders; md5: string; size: number }> {
  const url = new URL(`${target.url}${route}`);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers: { authorization: `Bearer ${target.apiKey}` }, ...(target.ca && url.protocol === 'https:' ? { ca: target.ca } : {}) }, (res) => {
      if ((res.statusCode ?? 0) !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: { error?: string; code?: string } = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          } catch { /* not JSON */ }
          reject(new ApiRequestError(res.statusCode ?? 0, body.code, body.error ?? 'download failed'));
        });
        return;
      }
      const hash = createHash('md5');
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      pipeline(res, tap, createWriteStream(file)).then(() => resolve({ headers: res.headers, md5: hash.digest('hex'), size }), reject);
    });
    req.on('error', reject);
  });
}

export function registerArtifactsCommand(program: Command): void {
  const artifacts = program.command('artifacts').description('Artifacts uploaded through POST /ingest: list, download, export; ingestion keys.');

  addConnectionOptions(
    artifacts
      .command('list')
      .description('List artifacts: log id, type, source, original path, size, md5, upload and expiry times.')
      .option('--start <seconds>', 'uploaded at or after (Unix seconds)', intArg('--start', 0), 0)
      .option('--end <seconds>', 'uploaded at or before (Unix seconds)', intArg('--end', 0))
      .option('--source <source>', 'only artifacts of this source (e.g. a sid)')
      .option('--limit <n>', 'most artifacts', intArg('--limit', 1, 100_000), 1000)
      .option('--json', 'print a JSON array of artifacts'),
  ).action(async (opts: JsonOption & { start: number; end?: number; source?: string; limit: number }) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const all: ApiArtifact[] = [];
    let cursor: string | undefined;
    do {
      const page = await api.get<{ artifacts: ApiArtifact[]; next_cursor: string | null }>(`/v1/insight/${oid}/artifacts`, {
        start: opts.start, end: opts.end, source: opts.source, limit: Math.min(1000, opts.limit - all.length), cursor,
      });
      all.push(...page.artifacts);
      cursor = page.next_cursor ?? undefined;
    } while (cursor && all.length < opts.limit);
    if (opts.json) printJson(all);
    else printTable(['LOG ID', 'TYPE', 'SOURCE', 'PATH', 'SIZE', 'MD5', 'UPLOADED', 'EXPIRES'],
      all.map((a) => [a.log_id, a.log_type, a.source, a.original_path || '-', String(a.size), a.md5, isoTime(a.created_ts), isoTime(a.expires_ts)]), 'no artifacts');
  });

  addConnectionOptions(
    artifacts
      .command('get')
      .description('Download an artifact\'s original bytes; its md5 is checked against the one recorded at upload.')
      .argument('<log_id>', 'artifact id')
      .option('-o, --output <file>', 'where to write it (default: <log_id> in the current directory)')
      .option('--json', 'print {log_id, file, size, md5}'),
  ).action(async (logId: string, opts: JsonOption & { output?: string }) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const file = path.resolve(opts.output ?? logId);
    const got = await download(api.target, `/v1/insight/${oid}/artifacts/${encodeURIComponent(logId)}`, file);
    const expected = String(got.headers['x-picket-md5'] ?? '');
    if (expected !== got.md5) {
      await fs.rm(file, { force: true });
      throw new Error(`md5 mismatch: the cloud recorded ${expected}, received ${got.md5}`);
    }
    if (opts.json) printJson({ log_id: logId, file, size: got.size, md5: got.md5 });
    else out(`${file}: ${got.size} bytes, md5 ${got.md5} (verified)`);
  });

  addConnectionOptions(
    artifacts
      .command('export')
      .description('Package artifacts as a tar.gz. Prints the export id at once; with --output waits for the package and downloads it.')
      .argument('<log_ids...>', 'artifact ids')
      .option('-o, --output <file>', 'wait until the package is ready and write it here')
      .option('--timeout <seconds>', 'how long --output waits', intArg('--timeout', 1), 600)
      .option('--json', 'print the export'),
  ).action(async (logIds: string[], opts: JsonOption & { output?: string; timeout: number }) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    let exp = await api.post<ApiExport>(`/v1/insight/${oid}/artifacts/export`, { log_ids: logIds });
    if (opts.output) {
      const deadline = Date.now() + opts.timeout * 1000;
      while (exp.state === 'pending') {
        if (Date.now() > deadline) throw new Error(`export ${exp.export_id} not ready after ${opts.timeout} s`);
        await new Promise((r) => setTimeout(r, 250));
        exp = await api.get<ApiExport>(`/v1/insight/${oid}/artifacts/exports/${exp.export_id}`, { status: true });
      }
      if (exp.state === 'failed') throw new Error(`export ${exp.export_id} failed: ${exp.error ?? 'unknown error'}`);
      await download(api.target, `/v1/insight/${oid}/artifacts/exports/${exp.export_id}`, path.resolve(opts.output));
    }
    if (opts.json) printJson(exp);
    else out(opts.output ? `export ${exp.export_id}: ${exp.size} bytes written to ${path.resolve(opts.output)}` : `export ${exp.export_id} requested (${exp.state}); download: picket artifacts export ... --output <file>, or GET /v1/insight/${oid}/artifacts/exports/${exp.export_id}`);
  });

  const keys = artifacts.command('keys').description('Ingestion keys: the Basic password of POST /ingest (the user name is the organization id).');
  addConnectionOptions(keys.command('list').description('List ingestion keys (never their secrets).').option('--json', 'print a JSON array')).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<{ keys: ApiIngestionKey[] }>(`/v1/insight/${oid}/ingestion_keys`);
    if (opts.json) printJson(res.keys);
    else printTable(['NAME', 'KEY ID', 'CREATED'], res.keys.map((k) => [k.name, k.key_id, isoTime(k.created_ts)]), 'no ingestion keys');
  });
  addConnectionOptions(keys.command('create').description('Create an ingestion key; it is printed once (only its hash is stored).').argument('<name>', 'name of the key').option('--json', 'print the API response, key included'))
    .action(async (name: string, opts: JsonOption) => {
      const api = ApiClient.fromOptions(opts);
      const oid = await api.oid();
      const res = await api.post<ApiIngestionKey & { key: string }>(`/v1/insight/${oid}/ingestion_keys`, { name });
      if (opts.json) {
        printJson(res);
        return;
      }
      out(`Created ingestion key "${res.name}".`);
      out(`Key (shown only now): ${res.key}`);
      out(`Upload: curl -u ${oid}:${res.key} --data-binary @file ${api.target.url}/ingest`);
    });
  addConnectionOptions(keys.command('delete').description('Delete an ingestion key by name.').argument('<name>', 'name of the key').option('--json', 'print the API response'))
    .action(async (name: string, opts: JsonOption) => {
      const api = ApiClient.fromOptions(opts);
      const oid = await api.oid();
      const res = await api.delete<{ deleted: boolean; name: string }>(`/v1/insight/${oid}/ingestion_keys`, { body: { name } });
      if (opts.json) printJson(res);
      else out(`ingestion key "${res.name}" deleted`);
    });
}
