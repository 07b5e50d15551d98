// cloud_adapter_disabled (decisions.md §3, platform-reference.md §7.1): organization routing
// {oid, event_type, event_time, event_id}, payload {error}, in the deployment stream.
import { cloudAdapterDisabled } from '../../catalogue/builders.js';
import { organizationEnvelope } from '../../pipeline/envelope.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';

export function cloudAdapterDisabledEvent(oid: string, error: string, now: number): PipelineEvent {
  const { json, event_id, event_time } = organizationEnvelope({ oid, event_type: 'cloud_adapter_disabled', event_time: now }, cloudAdapterDisabled(error));
  return { oid, sid: null, event_type: 'cloud_adapter_disabled', event_time, event_id, stream: 'deployment', json };
}
