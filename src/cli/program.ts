// Builds the `picket` command tree; each command lives in its own module under commands/.
import { Command } from 'commander';
import { registerServeCommand } from './commands/serve.js';
import { registerSensorCommand } from './commands/sensor.js';
import { registerSensorsCommand } from './commands/sensors.js';
import { registerKeysCommand } from './commands/keys.js';
import { registerOrgCommand } from './commands/org.js';
import { registerEventsCommand } from './commands/events.js';
import { registerSimulateCommand } from './commands/simulate.js';
import { registerTaskCommand } from './commands/task.js';
import { registerOutputsCommand } from './commands/outputs.js';
import { registerUsageCommand } from './commands/usage.js';
import { registerCloudAdaptersCommand } from './commands/cloud-adapters.js';
import { registerArtifactsCommand } from './commands/artifacts.js';
import { registerAdapterCommand } from './commands/adapter.js';
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
  registerTaskCommand(program);
  registerOutputsCommand(program);
  registerUsageCommand(program);
  registerCloudAdaptersCommand(program);
  registerArtifactsCommand(program);
  registerSimulateCommand(program);
  registerAdapterCommand(program);
  return program;
}
