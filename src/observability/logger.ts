// Structured JSON logs (pino) for every component; one root logger, child loggers per component.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'picket' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination(1));
}

/** A logger that writes nothing (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
