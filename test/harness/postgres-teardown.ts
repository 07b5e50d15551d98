// Global setup of the "postgres" test project (vitest.config.ts): when the run ends, drop the schemas its
// servers used (each data directory had its own, named picket_h_<run>_<hash>), including those of servers
// whose tests kept or removed their data directory themselves.
export default function setup(): () => Promise<void> {
  return async () => {
    const run = process.env.PICKET_TEST_RUN;
    if (!run) return;
    const { dropRunSchemas } = await import('./postgres.js');
    await dropRunSchemas(run);
  };
}
