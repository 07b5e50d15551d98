// Cloud-produced flow-control events (decisions.md §2): each BACKOFF sent to a sensor or adapter is also
// recorded on its timeline, with the sensor's routing.
import { backoff } from '../../catalogue/index.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import type { RoutingTemplate } from '../../pipeline/envelope.js';
import { sensorEvent } from './lifecycle-events.js';

export function backoffEvent(template: RoutingTemplate, seconds: number, reason: string, now: number): PipelineEvent {
  return sensorEvent(template, 'BACKOFF', 'event', backoff(seconds, Math.floor(now / 1000), reason), now);
}
