// `picket keys list|create|delete`: installation keys, which sensors enroll with. (API keys are under
// `picket org api-keys`.)
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, type ApiInstallationKey, type ConnectionOptions } from '../api-client.js';
import { isoTime, out, printJson, printTable } from '../output.js';

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface CreateOptions extends JsonOption {
  desc?: string;
  tags?: string;
}

export function registerKeysCommand(program: Command): void {
  const keys = program
    .command('keys')
    .description('Manage installation keys (what sensors enroll with). API keys: see `picket org api-keys`.');

  addConnectionOptions(
    keys
      .command('list')
      .description('List installation keys: iid, description, tags given to enrolling sensors, creation time (never the secrets).')
      .option('--json', 'print a JSON array of installation keys'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<Record<string, Record<string, ApiInstallationKey>>>(`/v1/installationkeys/${oid}`);
    const list = Object.values(res[oid] ?? {}).sort((a, b) => a.created_ts - b.created_ts);
    if (opts.json) printJson(list);
    else printTable(['IID', 'DESCRIPTION', 'TAGS', 'CREATED'], list.map((k) => [k.iid, k.desc || '-', k.tags || '-', isoTime(k.created_ts)]), 'no installation keys');
  });

  addConnectionOptions(
    keys
      .command('create')
      .description('Create an installation key. The key is printed once: keep it (only its hash is stored).')
      .option('--desc <text>', 'description', '')
      .option('--tags <tags>', 'tags for every sensor that enrolls with this key, comma-separated')
      .option('--json', 'print the API response, key included'),
  ).action(async (opts: CreateOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.post<ApiInstallationKey & { key: string }>(`/v1/installationkeys/${oid}`, { desc: opts.desc ?? '', tags: opts.tags ?? '' });
    if (opts.json) {
      printJson(res);
      return;
    }
    out(`Created installation key ${res.iid}${res.tags ? ` (tags: ${res.tags})` : ''}.`);
    out(`Key (shown only now): ${res.key}`);
    out(`Enroll a sensor:      picket sensor --url ${api.target.url} --key ${res.key}`);
  });

  addConnectionOptions(
    keys
      .command('delete')
      .description('Delete an installation key: no new sensor can enroll with it; enrolled sensors keep working.')
      .argument('<iid>', 'installation key id')
      .option('--json', 'print the API response'),
  ).action(async (iid: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.delete<{ deleted: boolean; iid: string }>(`/v1/installationkeys/${oid}`, { body: { iid } });
    if (opts.json) printJson(res);
    else out(`installation key ${res.iid} deleted`);
  });
}
