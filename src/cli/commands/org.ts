// `picket org info|list|create|quota` and `picket org api-keys list|create|delete`.
import { InvalidArgumentError, type Command } from 'commander';
import { addConnectionOptions, ApiClient, intArg, type ApiKeyInfo, type ApiOrg, type ConnectionOptions } from '../api-client.js';
import { isoTime, out, printFields, printJson, printTable } from '../output.js';

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface CreateOrgOptions extends JsonOption {
  quota?: number;
}

interface QuotaOptions extends JsonOption {
  org?: string;
}

interface QuotaUsage {
  usage: number;
  quota?: number;
  breakdown: Record<string, { count: number; weight: number; quota: number }>;
}

function quotaArg(value: string): string {
  if (!/^(\d{1,9}|unlimited)$/.test(value)) throw new InvalidArgumentError('expected a number of sensors, or "unlimited"');
  return value;
}

interface CreateKeyOptions extends JsonOption {
  role: string;
}

const ROLES = ['read', 'admin', 'root'];

function role(value: string): string {
  if (!ROLES.includes(value)) throw new InvalidArgumentError(`must be one of ${ROLES.join(', ')}`);
  return value;
}

export function registerOrgCommand(program: Command): void {
  const org = program.command('org').description('Your organization, creating organizations (root keys), and API keys.');

  addConnectionOptions(
    org
      .command('info')
      .description('Show the organization of the API key: id, name, quota, sensors, and the URLs sensors and clients use.')
      .option('--json', 'print the organization and its URLs as JSON'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const [info, urls, who] = await Promise.all([
      api.get<ApiOrg>(`/v1/orgs/${oid}`),
      api.get<{ url: { api: string; sensor: string } }>(`/v1/orgs/${oid}/url`),
      api.get<{ key_id: string; name: string; role: string }>('/v1/whoami'),
    ]);
    if (opts.json) {
      printJson({ ...info, url: urls.url, api_key: who });
      return;
    }
    printFields([
      ['oid', info.oid],
      ['name', info.name],
      ['quota', info.quota === null ? 'unlimited' : String(info.quota)],
      ['sensors', `${info.sensors ?? '?'} enrolled, ${info.online ?? '?'} online`],
      ['created', isoTime(info.created_ts)],
      ['api url', urls.url.api],
      ['sensor url', urls.url.sensor],
      ['api key', `${who.name} (${who.key_id}, role ${who.role})`],
    ]);
  });

  addConnectionOptions(
    org
      .command('list')
      .description('List organizations: your own, or every organization with a root key.')
      .option('--json', 'print a JSON array of organizations'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.get<{ orgs: ApiOrg[] }>('/v1/orgs');
    if (opts.json) printJson(res.orgs);
    else printTable(['OID', 'NAME', 'QUOTA', 'CREATED'], res.orgs.map((o) => [o.oid, o.name, o.quota === null ? 'unlimited' : String(o.quota), isoTime(o.created_ts)]), 'no organizations');
  });

  addConnectionOptions(
    org
      .command('create')
      .description('Create an organization (needs a root API key). Prints its admin API key and installation key once.')
      .argument('<name>', 'organization name (unique)')
      .option('--quota <n>', 'most sensors online at once (default: unlimited)', intArg('--quota', 0))
      .option('--json', 'print the API response, keys included'),
  ).action(async (name: string, opts: CreateOrgOptions) => {
    const api = ApiClient.fromOptions(opts);
    const res = await api.post<ApiOrg & { api_key: string; installation_key: string }>('/v1/orgs', { name, ...(opts.quota !== undefined ? { quota: opts.quota } : {}) });
    if (opts.json) {
      printJson(res);
      return;
    }
    out(`Created organization "${res.name}" (oid ${res.oid}).`);
    out('Shown only now, keep them:');
    out(`  Admin API key:     ${res.api_key}`);
    out(`  Installation key:  ${res.installation_key}`);
  });

  addConnectionOptions(
    org
      .command('quota')
      .description('Show sensors online against the quota; with a value, set the quota (root keys; emits quota_changed). Lowering it disconnects nobody.')
      .argument('[quota]', 'new quota: most sensors online at once, or "unlimited"', quotaArg)
      .option('--org <oid>', 'organization to act on (root keys; default: the API key\'s own)')
      .option('--json', 'print the API response'),
  ).action(async (value: string | undefined, opts: QuotaOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = opts.org ?? (await api.oid());
    if (value !== undefined) {
      const res = await api.post<{ oid: string; old_quota: number | null; new_quota: number | null; changed: boolean }>(`/v1/orgs/${encodeURIComponent(oid)}/quota`, {
        quota: value === 'unlimited' ? null : Number(value),
      });
      const label = (q: number | null): string => (q === null ? 'unlimited' : String(q));
      if (opts.json) printJson(res);
      else out(res.changed ? `quota of ${res.oid}: ${label(res.old_quota)} -> ${label(res.new_quota)}` : `quota of ${res.oid} already ${label(res.new_quota)}`);
      return;
    }
    const usage = await api.get<QuotaUsage>(`/v1/quota_usage/${encodeURIComponent(oid)}`);
    if (opts.json) {
      printJson(usage);
      return;
    }
    out(`${usage.usage} online of ${usage.quota ?? 'unlimited'}`);
    printTable(['PLATFORM', 'ONLINE', 'WEIGHT', 'USES'], Object.entries(usage.breakdown).map(([name, b]) => [name, String(b.count), String(b.weight), String(b.quota)]), 'no sensor online');
  });

  const apiKeys = org.command('api-keys').description('Manage the API keys of your organization.');

  addConnectionOptions(
    apiKeys
      .command('list')
      .description('List API keys: id, name, role, creation time (never the secrets).')
      .option('--json', 'print a JSON array of API keys'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<{ keys: ApiKeyInfo[] }>(`/v1/orgs/${oid}/keys`);
    if (opts.json) printJson(res.keys);
    else printTable(['KEY ID', 'NAME', 'ROLE', 'CREATED'], res.keys.map((k) => [k.key_id, k.name, k.role, isoTime(k.created_ts)]), 'no API keys');
  });

  addConnectionOptions(
    apiKeys
      .command('create')
      .description('Create an API key; it is printed once. Roles: read (GET only), admin (everything in the organization), root (admin + organizations; root keys only).')
      .argument('<name>', 'a name to recognise the key by')
      .option('--role <role>', 'read, admin or root', role, 'read')
      .option('--json', 'print the API response, key included'),
  ).action(async (name: string, opts: CreateKeyOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.post<ApiKeyInfo & { key: string }>(`/v1/orgs/${oid}/keys`, { name, role: opts.role });
    if (opts.json) {
      printJson(res);
      return;
    }
    out(`Created API key "${res.name}" (${res.key_id}, role ${res.role}).`);
    out(`Key (shown only now): ${res.key}`);
  });

  addConnectionOptions(
    apiKeys
      .command('delete')
      .description('Delete an API key; it stops working at once.')
      .argument('<key_id>', 'API key id (the part before the dot)')
      .option('--json', 'print the API response'),
  ).action(async (keyId: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.delete<{ deleted: boolean; key_id: string }>(`/v1/orgs/${oid}/keys/${encodeURIComponent(keyId)}`);
    if (opts.json) printJson(res);
    else out(`API key ${res.key_id} deleted`);
  });
}
