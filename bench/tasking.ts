// Tasking round trip: from the task API call to its result event. Tasking lands with the tasking issue;
// until then this benchmark records that it cannot measure anything, so the report shows the gap.
import type { BenchContext } from './lib/context.js';
import type { BenchResult } from './lib/result.js';

export async function taskingBenchmark(ctx: BenchContext): Promise<Omit<BenchResult, 'command' | 'commit' | 'date' | 'quick' | 'machine' | 'duration_s'>> {
  ctx.log('tasking: not available yet (no task API in this build)');
  return {
    name: 'tasking',
    title: 'Tasking round trip',
    status: 'not-available',
    figures: {},
    baseline: { description: 'an in-process echo of the same task messages over one WebSocket (to be measured with the tasking API)', figures: {} },
    ratios: {},
    targets: [{ description: 'task round trip p99 < 10 ms at 1,000 tasks/s', figure: 'round_trip_p99_ms', op: '<=', value: 10, met: null }],
    limits: [],
    notes: ['Not measured: the task API (`POST /v1/{sid}`) and sensor-side command handling land with the tasking issue; this benchmark will drive 1,000 tasks/s over connected simulated sensors then.'],
  };
}
