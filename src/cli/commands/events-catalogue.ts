// `picket events schema` and `picket events validate`: the event catalogue from the command line.
// Both work offline (no server): schema prints the catalogue, validate checks JSON lines from stdin.
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { catalogueDocument, validateEvent, validatePayload, type FieldError, type ValidationResult } from '../../catalogue/index.js';

export interface CatalogueIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Receives the exit status; by default it is set as process.exitCode (never process.exit). */
  exit?: (code: number) => void;
}

type ValidateOptions = {
  type?: string;
  json?: boolean;
  produced?: boolean;
};

interface LineResult {
  line: number;
  valid: boolean;
  event_type: string | null;
  known: boolean;
  errors: FieldError[];
}

function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(text)) resolve();
    else stream.once('drain', () => resolve());
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function eventTypeOf(value: unknown, forced: string | undefined): string | null {
  if (forced !== undefined) return forced;
  if (!isObject(value)) return null;
  if (isObject(value.routing) && typeof value.routing.event_type === 'string') return value.routing.event_type;
  if ('record' in value && !('event' in value)) return 'billing_record';
  return null;
}

/** With --type, a line that is not an envelope (no routing, event or record) is taken as a bare payload. */
function isBarePayload(value: unknown): boolean {
  return isObject(value) && !('routing' in value) && !('event' in value) && !('record' in value);
}

export function checkLine(text: string, line: number, opts: ValidateOptions): LineResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { line, valid: false, event_type: opts.type ?? null, known: false, errors: [{ field: 'line', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const eventType = eventTypeOf(value, opts.type);
  let result: ValidationResult;
  if (opts.type !== undefined && isBarePayload(value)) result = validatePayload(opts.type, value);
  else result = validateEvent(value, { ...(opts.type !== undefined ? { eventType: opts.type } : {}), produced: opts.produced === true });
  return { line, valid: result.valid, event_type: eventType, known: result.known === true, errors: result.errors };
}

function formatText(r: LineResult): string {
  const label = r.event_type ?? 'unknown type';
  if (r.valid) return `line ${r.line}: valid (${label})\n`;
  return `line ${r.line}: invalid (${label}): ${r.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}\n`;
}

function defaultIo(): CatalogueIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

export function registerCatalogueCommands(events: Command, io: CatalogueIo = defaultIo()): void {
  const exit = io.exit ?? ((code: number) => {
    if (code !== 0) process.exitCode = code;
  });

  events
    .command('schema')
    .description('Print the event catalogue as JSON: streams, routing fields and every event with its producer, trigger, fields and JSON Schema.')
    .action(async () => {
      await write(io.stdout, `${JSON.stringify(catalogueDocument(), null, 2)}\n`);
      exit(0);
    });

  events
    .command('validate')
    .description('Validate events read as JSON lines from stdin against the catalogue; exits 1 if any line is invalid.')
    .option('--type <event_type>', 'validate every line as this event type; a line without routing/event is taken as a bare payload')
    .option('--json', 'print one JSON object per line: {line, valid, event_type, known, errors}')
    .option('--produced', 'the events were produced by Picket: also require event_id, event_time in ms and the full routing of their scope')
    .addHelpText('after', '\nExample:\n  picket events --sid <sid> --json | picket events validate --produced')
    .action(async (_opts: ValidateOptions, cmd: Command) => {
      // optsWithGlobals: the parent `events` command may define --json or --type itself.
      const opts = cmd.optsWithGlobals<ValidateOptions>();
      let lineNo = 0;
      let checked = 0;
      let invalid = 0;
      let unknown = 0;
      const lines = createInterface({ input: io.stdin, crlfDelay: Infinity });
      for await (const raw of lines) {
        lineNo++;
        const text = raw.trim();
        if (text === '') continue;
        const r = checkLine(text, lineNo, opts);
        checked++;
        if (!r.valid) invalid++;
        else if (!r.known) unknown++;
        await write(io.stdout, opts.json ? `${JSON.stringify(r)}\n` : formatText(r));
      }
      const notChecked = unknown > 0 ? ` (${unknown} of a type not in the catalogue: only the envelope was checked)` : '';
      await write(io.stderr, `${checked} event${checked === 1 ? '' : 's'}: ${checked - invalid} valid${notChecked}, ${invalid} invalid\n`);
      exit(invalid > 0 ? 1 : 0);
    });
}
