#!/usr/bin/env node
// `picket`: the one command-line entry point (server, reference sensor, and API client commands).
import { Command, CommanderError } from 'commander';
import { registerServeCommand } from './commands/serve.js';
import { registerSensorCommand } from './commands/sensor.js';
import { registerSensorsCommand } from './commands/sensors.js';
import { registerKeysCommand } from './commands/keys.js';
import { registerOrgCommand } from './commands/org.js';
import { registerEventsCommand } from './commands/events.js';
import { PICKET_VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('picket')
    .description('Picket: a self-hosted sensor cloud. Run the cloud (serve), a sensor (sensor), or manage a running cloud.')
    .version(PICKET_VERSION)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  registerServeCommand(program);
  registerSensorCommand(program);
  registerSensorsCommand(program);
  registerKeysCommand(program);
  registerOrgCommand(program);
  registerEventsCommand(program);
  return program;
}

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
