// Task command lines are parsed shell-like, as platform-reference.md §3.3 says.
import { describe, expect, it } from 'vitest';
import { CommandLineError, MAX_COMMAND_LINE, parseCommand, parseCommandLine } from '../src/protocol/command-line.js';

describe('command lines', () => {
  it.each([
    ['segregate_network', ['segregate_network']],
    ['  run   --shell-command  ls ', ['run', '--shell-command', 'ls']],
    ['dir_list "C:\\Program Files" *.exe -d 2', ['dir_list', 'C:\\Program Files', '*.exe', '-d', '2']],
    ["run --shell-command 'echo \"hi there\"'", ['run', '--shell-command', 'echo "hi there"']],
    ["run --shell-command 'a\\b'", ['run', '--shell-command', 'a\\b']],
    ['run --shell-command "say \\"x\\""', ['run', '--shell-command', 'say "x"']],
    ['file_get C:\\temp\\a.txt', ['file_get', 'C:\\temp\\a.txt']],
    ['echo "" end', ['echo', '', 'end']],
    ['a"b c"d', ['ab cd']],
  ])('%s', (line, expected) => {
    expect(parseCommandLine(line)).toEqual(expected);
  });

  it('refuses unterminated quotes and oversize lines', () => {
    expect(() => parseCommandLine('run --shell-command "ls')).toThrow(CommandLineError);
    expect(() => parseCommandLine("run 'ls")).toThrow(/single quote/);
    // Single quotes never escape: the backslash is literal and the quote after it closes the group.
    expect(() => parseCommandLine("run 'it\\'s'")).toThrow(/single quote/);
    expect(() => parseCommandLine('x'.repeat(MAX_COMMAND_LINE + 1))).toThrow(/longer/);
  });

  it('splits a command into name, positional arguments and options', () => {
    expect(parseCommand('run --shell-command "uname -a" --timeout 5 --is-ignore-cert')).toEqual({
      name: 'run', positional: [], options: new Map<string, string | true>([['shell-command', 'uname -a'], ['timeout', '5'], ['is-ignore-cert', true]]),
    });
    expect(parseCommand('set_performance_mode --is-enabled').options.get('is-enabled')).toBe(true);
    expect(() => parseCommand('   ')).toThrow(/empty/);
  });
});
