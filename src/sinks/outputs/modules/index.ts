// Every output module Picket ships, by the `module` name an output configuration uses. A new module is a
// file in this folder exporting an OutputModuleDescriptor, listed here.
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import { fileModule } from './file.js';
import { natsModule } from './nats.js';
import { syslogModule } from './syslog.js';
import { webhookBulkModule } from './webhook-bulk.js';
import { webhookModule } from './webhook.js';

export const OUTPUT_MODULES: ReadonlyMap<string, OutputModuleDescriptor> = new Map(
  [fileModule, webhookModule, webhookBulkModule, syslogModule, natsModule].map((m) => [m.name, m]),
);
