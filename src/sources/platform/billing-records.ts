// billing_record events (decisions.md §1, platform-reference.md §6.2): `{record:{cat,k,v,oid,record_id,ts},
// routing}` in the `billing` stream, one per organization, key and period. record_id is "<uuid>-<n>": one
// uuid per organization and period, n counting its records.
import type { BillingRecord } from '../../catalogue/index.js';
import { newId } from '../../domain/ids.js';
import type { UsageAmount } from '../../domain/usage.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import { sqlDateTime } from '../../services/periods.js';
import { reportedAmount } from '../../services/usage-meter.js';

/** The records of one period (amounts of any organizations), zero amounts left out. */
export function billingRecordEvents(period: number, amounts: ReadonlyArray<UsageAmount>, now: number): PipelineEvent[] {
  const byOrg = new Map<string, UsageAmount[]>();
  for (const a of amounts) {
    if (a.period !== period || reportedAmount(a) <= 0) continue;
    let list = byOrg.get(a.oid);
    if (!list) byOrg.set(a.oid, (list = []));
    list.push(a);
  }
  const ts = sqlDateTime(period);
  const events: PipelineEvent[] = [];
  for (const [oid, list] of byOrg) {
    const batch = newId();
    list.sort((a, b) => a.cat.localeCompare(b.cat) || a.k.localeCompare(b.k));
    list.forEach((a, n) => {
      const record: BillingRecord = { cat: a.cat, k: a.k, oid, record_id: `${batch}-${n}`, ts, v: reportedAmount(a) };
      const event_id = newId();
      const routing = { oid, event_type: 'billing_record', event_time: now, event_id };
      events.push({ oid, sid: null, event_type: 'billing_record', event_time: now, event_id, stream: 'billing', json: JSON.stringify({ record, routing }) });
    });
  }
  return events;
}
