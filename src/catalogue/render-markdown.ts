// Renders docs/events.md from the catalogue, so the documentation is the catalogue. A test fails when
// the file is stale; regenerate with `UPDATE_DOCS=1 npx vitest run test/catalogue.test.ts`.
import type { StreamName } from '../bus/event-bus.js';
import type { CatalogueEntry } from './definition.js';
import { ENVELOPE_DESCRIPTION, STREAMS } from './document.js';
import { exampleEnvelope } from './examples.js';
import { typeLabel } from './fields.js';
import { CATALOGUE_VERSION, listEvents } from './registry.js';
import { routingFieldDocs } from './routing.js';

const SEED_PAGES = { 'sensor-events': 'sensor events', 'platform-events': 'platform events' } as const;

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(text: string): string {
  return `\`${text}\``;
}

/** GitHub's heading anchor. */
function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

function json(value: unknown): string {
  return ['```json', JSON.stringify(value, null, 2), '```'].join('\n');
}

/** One section per event, or per family of generated names (`*_per_org`). */
interface Section {
  heading: string;
  entries: CatalogueEntry[];
}

function sections(entries: CatalogueEntry[]): Section[] {
  const out: Section[] = [];
  const byFamily = new Map<string, Section>();
  for (const e of entries) {
    if (!e.family) {
      out.push({ heading: e.eventType, entries: [e] });
      continue;
    }
    let s = byFamily.get(e.family);
    if (!s) {
      s = { heading: e.family, entries: [] };
      byFamily.set(e.family, s);
      out.push(s);
    }
    s.entries.push(e);
  }
  return out;
}

function renderSection(s: Section): string {
  const first = s.entries[0]!;
  const lines: string[] = [`### ${s.heading}`, '', first.description, ''];
  if (s.entries.length > 1) lines.push(`Names: ${s.entries.map((e) => code(e.eventType)).join(', ')}.`, '');
  lines.push(`- **Producer**: ${first.producer}`);
  lines.push(`- **Stream**: ${first.stream ?? 'none (not stored)'}`);
  if (s.entries.length > 1) {
    lines.push('- **Trigger**:', ...s.entries.map((e) => `  - ${code(e.eventType)}: ${e.trigger}`));
  } else {
    lines.push(`- **Trigger**: ${first.trigger}`);
  }
  lines.push(`- **Routing**: ${first.routingScope} scope${first.routingNote ? `; ${first.routingNote}` : ''}`);
  if (first.seed) lines.push(`- **Seed**: ${SEED_PAGES[first.seed.page]} page, "${first.seed.heading}"${first.seed.hasSample ? ', with a sample (a test fixture)' : ''}`);
  else lines.push('- **Source**: decisions.md');
  lines.push('');
  const prefix = first.payloadKey;
  if (first.fields.length > 0) {
    lines.push(
      table(
        ['field', 'type', 'required', 'description'],
        first.fields.map((f) => [code(`${prefix}.${f.path}`), f.type, f.required ? 'yes' : 'no', f.description]),
      ),
    );
  } else {
    lines.push(`${code(prefix)} has no documented fields.`);
  }
  lines.push('', 'Example:', '', json(exampleEnvelope(first)), '');
  return lines.join('\n');
}

export function renderEventsMarkdown(): string {
  const entries = listEvents();
  const all = sections(entries);
  const out: string[] = [];
  out.push(
    '# Events',
    '',
    `<!-- Generated from src/catalogue/ (catalogue version ${CATALOGUE_VERSION}) by renderEventsMarkdown(); do not edit. Regenerate: UPDATE_DOCS=1 npx vitest run test/catalogue.test.ts -->`,
    '',
    `Picket's event catalogue: every event of the platform Picket reproduces, with its producer, trigger, stream and fields. ${entries.length} event types.`,
    'The same definitions validate events (`picket events validate < events.jsonl`) and are printed as JSON Schema by `picket events schema`.',
    '',
    '## The envelope',
    '',
    ENVELOPE_DESCRIPTION,
    '',
    '- Event names are case-sensitive and written as on the wire: platform events are lowercase (`enrollment`), sensor events uppercase (`CONNECTED`).',
    '- Events produced by the cloud (producer `cloud` below, and any `*_per_org|sensor|cloud_adapter` name) are refused when a sensor sends them.',
    '- Event types not in the catalogue (endpoint telemetry such as `NEW_PROCESS`) are accepted with any object payload on the `event` stream.',
    '',
    json(exampleEnvelope(entries.find((e) => e.eventType === 'CONNECTED') ?? entries[0]!)),
    '',
    '## Routing fields',
    '',
    'Picket builds `routing`; producers cannot add fields to it. "Required" fields are in every envelope; the last column says for which routing scopes Picket always sets the field. ' +
      'An event is in the `sensor` scope (full sensor routing), the `org` scope (organization only) or the `artifact` scope (organization plus `log_id`, `log_type`).',
    '',
    table(
      ['field', 'type', 'required', 'set by Picket for', 'description'],
      routingFieldDocs().map((f) => [code(f.name), typeLabel(f.schema), f.required ? 'yes' : 'no', f.producedIn.join(', ') || '-', f.description]),
    ),
    '',
    'Validating an event Picket produced (`validateEvent(e, {produced: true})`, `picket events validate --produced`) also requires `event_id` and `event_time` in milliseconds and refuses unknown routing fields.',
    '',
    '## Streams',
    '',
    table(
      ['stream', 'carries', 'events'],
      (Object.keys(STREAMS) as StreamName[]).map((s) => [code(s), STREAMS[s], all.filter((x) => x.entries[0]!.stream === s).map((x) => x.heading).join(', ')]),
    ),
    '',
    'ACK_MESSAGES is a protocol message only: counted in metrics, on no stream.',
    '',
    '## Index',
    '',
    table(
      ['event', 'producer', 'stream', 'trigger'],
      entries.map((e) => [`[${code(e.eventType)}](#${anchor(e.family ?? e.eventType)})`, e.producer, e.stream ?? '-', e.trigger]),
    ),
    '',
    '## Events',
    '',
  );
  for (const s of all) out.push(renderSection(s));
  return `${out.join('\n').trimEnd()}\n`;
}
