// `picket`: the one command-line entry point (server, reference sensor, and API client commands).
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

// A reader that stops early (`picket events schema | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError && err.code === 'commander.invalidArgument' && !err.message.startsWith('error:')) {
      // Thrown from inside an action rather than by commander's own parsing: not printed yet.
      console.error(`picket: ${err.message}`);
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      process.exitCode = err.exitCode;
      return;
    }
    console.error(`picket: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

await main();
