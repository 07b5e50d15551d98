// `picket`: the one command-line entry point (server, reference sensor, and API client commands).
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
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
