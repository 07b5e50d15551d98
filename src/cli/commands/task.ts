// `picket task <sid> '<command line>'`: tasks a sensor through the API and, with --wait, follows the task
// until the sensor answered (or it expired), printing what arrives.
import { InvalidArgumentError, type Command } from 'commander';
import { addConnectionOptions, ApiClient, type ConnectionOptions } from '../api-client.js';
import { out, printJson, summarizePayload } from '../output.js';

interface TaskOptions extends ConnectionOptions {
  investigationId?: string;
  ttl?: number;
  wait?: boolean;
  timeout: number;
  json?: boolean;
}

export interface ApiTask {
  task_id: string;
  sid: string;
  command: string;
  investigation_id: string | null;
  state: 'queued' | 'sent' | 'received' | 'answered' | 'expired';
  created: string;
  expires: string | null;
  received_at: string | null;
  answered_at: string | null;
  error: number | null;
  answer: { routing: { event_type: string; event_time: number; investigation_id?: string }; event: Record<string, unknown> } | null;
}

const positive = (flag: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} needs a positive number`);
  return n;
};

export function registerTaskCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('task')
      .description('Task a sensor with a command line (segregate_network, rejoin_network, run, set_performance_mode, unload_kernel, update, selftest, ...).')
      .argument('<sid>', 'sensor id')
      .argument('<command line>', 'the command, quoted as one argument, e.g. \'run --shell-command "uname -a"\'')
      .option('--investigation-id <id>', 'echoed in routing.investigation_id of every event the task causes')
      .option('--ttl <seconds>', 'queue the task for an offline sensor, for this long', positive('--ttl'))
      .option('--wait', 'follow the task until the sensor answers (or it expires), printing the receipt and the result')
      .option('--timeout <seconds>', 'with --wait: give up after this long', positive('--timeout'), 60)
      .option('--json', 'print JSON: the task as created, or with --wait one line per step (NDJSON), ending with the answering event')
      .addHelpText('after', [
        '',
        'Examples:',
        '  picket task <sid> selftest --wait',
        '  picket task <sid> \'run --shell-command "uname -a" --timeout 10\' --investigation-id case-42 --wait --json',
        '  picket task <sid> segregate_network --ttl 86400       # queued until the sensor connects (1 day)',
      ].join('\n')),
  ).action(async (sid: string, command: string, opts: TaskOptions) => {
    const api = ApiClient.fromOptions(opts);
    const body: Record<string, unknown> = { tasks: [command] };
    if (opts.investigationId !== undefined) body.investigation_id = opts.investigationId;
    if (opts.ttl !== undefined) body.ttl = Math.ceil(opts.ttl);
    const created = (await api.post<{ tasks: ApiTask[] }>(`/v1/${encodeURIComponent(sid)}`, body)).tasks[0]!;
    if (!opts.wait) {
      if (opts.json) printJson(created);
      else out(`task ${created.task_id} ${created.state}${created.expires ? ` (until ${created.expires})` : ''}`);
      return;
    }
    const say = (step: string, task: ApiTask, extra: Record<string, unknown> = {}): void => {
      if (opts.json) out(JSON.stringify({ step, task_id: task.task_id, state: task.state, ...extra }));
      else out(`${step.padEnd(9)} task ${task.task_id}${Object.keys(extra).length ? `  ${summarizePayload(extra)}` : ''}`);
    };
    say(created.state, created);
    const deadline = Date.now() + opts.timeout * 1000;
    let last = created.state;
    for (;;) {
      const task = await api.get<ApiTask>(`/v1/tasks/${created.task_id}`);
      if (task.state !== last && task.state === 'received') say('received', task);
      if (task.state === 'answered' && task.answer) {
        if (opts.json) out(JSON.stringify(task.answer));
        else out(`answered  ${task.answer.routing.event_type}  ERROR ${task.error ?? 0}  ${summarizePayload(task.answer.event)}`);
        process.exitCode = task.error === 0 ? 0 : 3;
        return;
      }
      if (task.state === 'expired') {
        say('expired', task);
        process.exitCode = 4;
        return;
      }
      last = task.state;
      if (Date.now() > deadline) throw new Error(`task ${task.task_id} not answered within ${opts.timeout} s (state: ${task.state}); follow it with GET /v1/tasks/${task.task_id}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}
