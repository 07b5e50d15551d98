// What the API may ask of this node's outputs (implemented by sinks/outputs/output-manager.ts through
// server.ts): parse and check a configuration, (re)start or stop an output's delivery, its live status,
// a test send. The API never imports the sinks themselves.
import type { OutputConfig } from '../domain/outputs.js';

export type OutputDefinition = Omit<OutputConfig, 'oid' | 'created' | 'updated'>;

export interface OutputRuntimeStatus {
  state: 'running' | 'retrying' | 'paused' | 'stopped';
  cursor: number;
  failures: number;
  last_error: string | null;
  last_error_at: number | null;
  retry_at: number | null;
}

export class OutputDefinitionError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

export interface OutputControl {
  /** Validates a definition from the API body; throws OutputDefinitionError naming the field. */
  parse(raw: Record<string, unknown>): OutputDefinition;
  /** The configuration as shown to users (secrets masked). */
  view(config: OutputConfig): Record<string, unknown>;
  /** Starts or restarts delivery with this configuration (already stored). */
  apply(config: OutputConfig): Promise<void>;
  remove(oid: string, name: string): Promise<void>;
  status(oid: string, name: string): OutputRuntimeStatus | undefined;
  testSend(config: OutputConfig): Promise<{ ok: true } | { ok: false; error: string }>;
}
