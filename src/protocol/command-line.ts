// Task command lines, parsed shell-like (platform-reference.md §3.3): whitespace separates arguments;
// single or double quotes group one; a backslash escapes only a quote inside double quotes (or outside
// quotes), single quotes never escape. `dir_list "C:\Program Files" *.exe -d 2` has four arguments.

export class CommandLineError extends Error {
  override name = 'CommandLineError';
}

/** Most characters in one command line. */
export const MAX_COMMAND_LINE = 16_384;

export function parseCommandLine(line: string): string[] {
  if (line.length > MAX_COMMAND_LINE) throw new CommandLineError(`command line is longer than ${MAX_COMMAND_LINE} characters`);
  const args: string[] = [];
  let current = '';
  let inArg = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
      continue;
    }
    if (c === '\\' && (line[i + 1] === '"' || (quote === null && line[i + 1] === "'"))) {
      current += line[++i];
      inArg = true;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else current += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inArg = true;
      continue;
    }
    if (/\s/.test(c)) {
      if (inArg) args.push(current);
      current = '';
      inArg = false;
      continue;
    }
    current += c;
    inArg = true;
  }
  if (quote) throw new CommandLineError(`unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  if (inArg) args.push(current);
  return args;
}

/** Options of a parsed command: `--name value`, `--flag` (true when followed by another option or nothing). */
export interface ParsedCommand {
  name: string;
  positional: string[];
  options: Map<string, string | true>;
}

export function parseCommand(line: string): ParsedCommand {
  const [name, ...rest] = parseCommandLine(line);
  if (!name) throw new CommandLineError('empty command line');
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg.startsWith('--') && arg.length > 2) {
      const next = rest[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        options.set(arg.slice(2), next);
        i++;
      } else {
        options.set(arg.slice(2), true);
      }
    } else {
      positional.push(arg);
    }
  }
  return { name, positional, options };
}
