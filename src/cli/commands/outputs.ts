// `picket outputs list|add|delete|test|errors`: where the organization's events are delivered
// (docs/outputs.md). Module fields and filters are given as --set field=value, exactly as the API names them.
import type { Command } from 'commander';
import { addConnectionOptions, ApiClient, type ConnectionOptions } from '../api-client.js';
import { out, printJson, printTable } from '../output.js';

interface JsonOption extends ConnectionOptions {
  json?: boolean;
}

interface AddOptions extends JsonOption {
  module: string;
  stream: string;
  set: string[];
}

interface OutputView {
  name: string;
  module: string;
  for: string;
  status: { state: string; failures: number; last_error: string | null };
  [field: string]: unknown;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** "key=value" pairs into fields; a key given twice becomes a list (event_white_list=A --set event_white_list=B). */
export function parseSetOptions(pairs: ReadonlyArray<string>): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = {};
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new Error(`--set expects field=value, got "${pair}"`);
    const key = pair.slice(0, i).trim();
    const value = pair.slice(i + 1);
    const prev = fields[key];
    fields[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return fields;
}

export function registerOutputsCommand(program: Command): void {
  const outputs = program.command('outputs').description('Manage outputs: where the organization\'s events are delivered (file, webhook, syslog, nats, ...).');

  addConnectionOptions(
    outputs.command('list').description('List outputs: name, module, stream, delivery state and last error.').option('--json', 'print the outputs as JSON'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<Record<string, Record<string, OutputView>>>(`/v1/outputs/${oid}`);
    const list = Object.values(res[oid] ?? {});
    if (opts.json) printJson(list);
    else {
      printTable(
        ['NAME', 'MODULE', 'STREAM', 'STATE', 'FAILURES', 'LAST ERROR'],
        list.map((o) => [o.name, o.module, o.for, o.status.state, String(o.status.failures), o.status.last_error ?? '-']),
        'no outputs',
      );
    }
  });

  addConnectionOptions(
    outputs
      .command('add')
      .description('Create or replace an output. Example: picket outputs add siem --module webhook --stream event --set dest_host=https://siem.example/hook --set secret_key=... --set event_white_list=NEW_PROCESS')
      .argument('<name>', 'output name (letters, digits, _ . -)')
      .requiredOption('--module <module>', 'file, webhook, webhook_bulk, syslog or nats')
      .requiredOption('--stream <stream>', 'event, deployment, artifact, billing or audit')
      .option('--set <field=value>', 'a module field, filter or shape option (repeatable; see docs/outputs.md)', collect, [])
      .option('--json', 'print the API response'),
  ).action(async (name: string, opts: AddOptions) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.post<OutputView>(`/v1/outputs/${oid}`, { ...parseSetOptions(opts.set), name, module: opts.module, type: opts.stream });
    if (opts.json) printJson(res);
    else out(`output ${res.name} (${res.module}, stream ${res.for}) saved; delivering events stored from now on`);
  });

  addConnectionOptions(
    outputs.command('delete').description('Delete an output (events already delivered stay where they are).').argument('<name>', 'output name').option('--json', 'print the API response'),
  ).action(async (name: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.delete<{ deleted: boolean; name: string }>(`/v1/outputs/${oid}`, { body: { name } });
    if (opts.json) printJson(res);
    else out(`output ${res.name} deleted`);
  });

  addConnectionOptions(
    outputs
      .command('test')
      .description('Send one test record to the output\'s destination now and report its answer (exit 1 when it fails).')
      .argument('<name>', 'output name')
      .option('--json', 'print the API response'),
  ).action(async (name: string, opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.post<{ ok: boolean; error?: string }>(`/v1/outputs/${oid}/${encodeURIComponent(name)}/test`, {});
    if (opts.json) printJson(res);
    else out(res.ok ? `output ${name}: test record delivered` : `output ${name}: test failed: ${res.error}`);
    if (!res.ok) process.exitCode = 1;
  });

  addConnectionOptions(
    outputs.command('errors').description('The last error of each failing output (GET /v1/errors/{oid}).').option('--json', 'print the errors as JSON'),
  ).action(async (opts: JsonOption) => {
    const api = ApiClient.fromOptions(opts);
    const oid = await api.oid();
    const res = await api.get<{ errors: Array<{ component: string; error: string; at: string }> }>(`/v1/errors/${oid}`);
    if (opts.json) printJson(res.errors);
    else printTable(['COMPONENT', 'AT', 'ERROR'], res.errors.map((e) => [e.component, e.at, e.error]), 'no errors');
  });
}
