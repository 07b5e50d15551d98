// `picket serve`: runs a Picket node (embedded store, or PostgreSQL with --store) until SIGTERM/SIGINT.
import type { Command } from 'commander';
import { CONFIG_SETTINGS, loadConfig, type ServerConfig } from '../../config.js';
import { startServer, type RunningServer } from '../../server.js';
import { debugClock } from '../debug-clock.js';

type ServeOptions = Partial<Record<keyof ServerConfig, string | boolean>> & { credentialsFile?: boolean };

export function registerServeCommand(program: Command): void {
  const serve = program
    .command('serve')
    .description('Run the Picket cloud: REST API and sensor gateway on one port; state and events in the embedded SQLite store (default) or PostgreSQL (--store).')
    .addHelpText('after', `\nEvery option can also be set with its environment variable:\n${CONFIG_SETTINGS.map((s) => `  ${s.env.padEnd(28)} ${s.flag}`).join('\n')}`);
  for (const s of CONFIG_SETTINGS) {
    if (s.key === 'writeCredentialsFile') continue;
    serve.option(s.flag, `${s.description} (env ${s.env}, default ${s.default})`);
  }
  serve.option('--no-credentials-file', 'Do not write <data>/credentials.json on first start (env PICKET_CREDENTIALS_FILE=false).');
  serve.action(async (opts: ServeOptions & Record<string, unknown>) => {
    const overrides: Partial<Record<keyof ServerConfig, string | boolean | undefined>> = {};
    for (const s of CONFIG_SETTINGS) {
      if (s.key === 'writeCredentialsFile') continue;
      const v = opts[optionKey(s.flag)];
      if (v !== undefined) overrides[s.key] = v as string;
    }
    if (opts.credentialsFile === false) overrides.writeCredentialsFile = false;
    const config = loadConfig(process.env, overrides);
    const clockFile = process.env.PICKET_DEBUG_CLOCK_FILE;
    const server = await startServer(config, clockFile ? { now: debugClock(clockFile).now } : {});
    printBanner(server);
    await waitForSignal(server);
  });
}

/** commander's attribute name for a flag such as "--sync-interval <seconds>". */
function optionKey(flag: string): string {
  const name = flag.split(' ')[0]!.replace(/^--/, '');
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function printBanner(server: RunningServer): void {
  const out = process.stderr;
  const sensorUrl = `${server.url.replace(/^http/, 'ws')}/sensor`;
  out.write(`\nPicket is running.\n`);
  out.write(`  API:             ${server.url}   (API docs: ${server.url}/docs)\n`);
  out.write(`  Sensor gateway:  ${sensorUrl}\n`);
  out.write(`  Store:           ${server.store.description}\n`);
  if (server.bootstrap) {
    out.write(`\nFirst start: created organization "default" (oid ${server.bootstrap.oid}).\n`);
    out.write(`  Admin API key:     ${server.bootstrap.api_key}\n`);
    out.write(`  Installation key:  ${server.bootstrap.installation_key}\n`);
    out.write(server.credentialsFile ? `  Both are saved in ${server.credentialsFile} (mode 0600), where the CLI finds them.\n` : `  They are shown only this once: keep them.\n`);
    out.write(`\nStart a sensor:  ./bin/picket sensor --key ${server.bootstrap.installation_key} --url ${server.url}\n`);
  } else if (server.credentialsFile) {
    out.write(`  Credentials:     ${server.credentialsFile}\n`);
  }
  out.write(`List sensors:    ./bin/picket sensors list\n\n`);
}

function waitForSignal(server: RunningServer): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`picket: ${signal} received, shutting down\n`);
      server.close().then(
        () => resolve(),
        (err: unknown) => {
          process.stderr.write(`picket: shutdown failed: ${(err as Error).message}\n`);
          process.exitCode = 1;
          resolve();
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
