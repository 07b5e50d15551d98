// `picket cloud-adapters list|add|delete|enable`: ingestion sources the cloud runs for the organization
// (docs/cloud-adapters.md): inbound webhooks, HTTP pollers, syslog listeners. Settings are given as
// --set field=value, exactly as the API names them.
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, type ConnectionOptions } from '../api-client.js';
import { out, printJson, printTable } from '../output.js';
import { parseSetOptions } from './outputs.js';

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface AddOptions extends JsonOption {
  type: string;
  set: string[];
  mapping: string[];
  gracePeriod?: string;
}

interface AdapterView {
  name: string;
  type: string;
  sid: string;
  enabled: boolean;
  ingest_path?: string;
  status: { state: string; failures: number; last_error: string | null; events: number };
  [field: string]: unknown;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerCloudAdaptersCommand(program: Command): void {
  const adapters = program
    .command('cloud-adapters')
    .description('Manage cloud adapters: inbound webhooks, HTTP pollers and syslog listeners the cloud runs, each appearing as a sensor.');

  addConnectionOptions(
    adapters.command('list').description('List cloud adapters: name, type, state, sensor and last error.').option('--json', 'print the adapters as JSON'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<Record<string, Record<string, AdapterView>>>(`/v1/cloud_adapters/${oid}`);
    const list = Object.values(res[oid] ?? {});
    if (opts.json) printJson(list);
    else {
      printTable(
        ['NAME', 'TYPE', 'STATE', 'SID', 'EVENTS', 'LAST ERROR'],
        list.map((a) => [a.name, a.type, a.status.state, a.sid, String(a.status.events), a.status.last_error ?? '-']),
        'no cloud adapters',
      );
    }
  });

  addConnectionOptions(
    adapters
      .command('add')
      .description('Create or replace a cloud adapter (it starts enabled). Example: picket cloud-adapters add okta --type http_poller --set url=https://example.okta.com/api/v1/logs --set auth_value="SSWS ..." --set cursor_field=published --set cursor_param=since')
      .argument('<name>', 'adapter name (letters, digits, _ . -)')
      .requiredOption('--type <type>', 'webhook, http_poller or syslog')
      .option('--set <field=value>', 'a setting of the type, or platform / hostname (repeatable; see docs/cloud-adapters.md)', collect, [])
      .option('--mapping <field=value>', 'a mapping path: event_type_path, event_time_path, sensor_hostname_path, investigation_id_path, parsing_re (repeatable)', collect, [])
      .option('--grace-period <seconds>', 'how long it may keep failing before it is disabled (default: the server\'s)')
      .option('--json', 'print the API response'),
  ).action(async (name: string, opts: AddOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const body: Record<string, unknown> = { ...parseSetOptions(opts.set), name, type: opts.type };
    if (opts.mapping.length > 0) body.mapping = parseSetOptions(opts.mapping);
    if (opts.gracePeriod !== undefined) body.grace_period = opts.gracePeriod;
    const res = await api.post<AdapterView>(`/v1/cloud_adapters/${oid}`, body);
    if (opts.json) printJson(res);
    else out(`cloud adapter ${res.name} (${res.type}) saved as sensor ${res.sid}${res.ingest_path ? `; senders post to ${res.ingest_path}` : ''}`);
  });

  addConnectionOptions(
    adapters.command('delete').description('Delete a cloud adapter (its sensor and stored events stay).').argument('<name>', 'adapter name').option('--json', 'print the API response'),
  ).action(async (name: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.delete<{ deleted: boolean; name: string }>(`/v1/cloud_adapters/${oid}`, { body: { name } });
    if (opts.json) printJson(res);
    else out(`cloud adapter ${res.name} deleted`);
  });

  addConnectionOptions(
    adapters.command('enable').description('Enable a cloud adapter again after it was disabled for failing too long.').argument('<name>', 'adapter name').option('--json', 'print the API response'),
  ).action(async (name: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.post<AdapterView>(`/v1/cloud_adapters/${oid}/${encodeURIComponent(name)}/enable`, {});
    if (opts.json) printJson(res);
    else out(`cloud adapter ${res.name} enabled`);
  });
}
