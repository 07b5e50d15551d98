// How an output module describes itself to the rest of Picket: its name, the configuration fields it
// takes (validated by output-config.ts before the module ever sees them), and its factory.
import type { OutputModuleFactory } from './output-module.js';

export interface ModuleFieldSpec {
  type: 'string' | 'integer' | 'boolean';
  required?: boolean;
  /** Never shown back by the API (secret_key, passwords, auth header values). */
  secret?: boolean;
  /** For integers: the smallest and largest accepted value. */
  min?: number;
  max?: number;
  /** For strings: the accepted values. */
  oneOf?: readonly string[];
  description: string;
}

export interface OutputModuleDescriptor {
  /** The `module` value of an output configuration (webhook, syslog, file, ...). */
  name: string;
  description: string;
  fields: Readonly<Record<string, ModuleFieldSpec>>;
  create: OutputModuleFactory;
}
