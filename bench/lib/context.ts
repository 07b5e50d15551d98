// What every benchmark gets from the runner.
export interface BenchContext {
  quick: boolean;
  /** A line of progress for the operator (stderr). */
  log(line: string): void;
  /** A progress line from a child process (shown overwriting on a TTY). */
  progress(line: string): void;
}
