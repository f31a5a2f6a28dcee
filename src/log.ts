// Structured logging with pino; secrets and row data are redacted by path and never logged on purpose.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'ormai-proxy' },
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'params', '*.params', 'url', '*.url'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
