// The debug crash switch (`picket sensor --debug-crash <exception|signal>`): after its first welcome the
// sensor dies on purpose, so operators and tests can check that sensor_crash reaches them. Its own module,
// so that the reported FILE_ID and LINE_NUMBER point here.

export type DebugCrashMode = 'exception' | 'signal';

export const DEBUG_CRASH_MODES: readonly DebugCrashMode[] = ['exception', 'signal'];

/** Crashes the process the way `mode` says, from outside any promise chain (a real uncaught error). */
export function crashOnPurpose(mode: DebugCrashMode): void {
  setImmediate(() => {
    if (mode === 'signal') {
      process.kill(process.pid, 'SIGABRT');
      return;
    }
    throw new Error(`debug crash requested (--debug-crash ${mode})`);
  });
}
