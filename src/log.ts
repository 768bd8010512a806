// Structured logs to stderr. Nothing that reaches a log line may carry a secret: messages are
// built from PVE reason phrases and our own text, never from headers or config values, and the
// redact list below is a second line of defence.
import pino, { type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['password', 'token_value', 'tokenValue', 'ticket', 'authorization', 'cookie', '*.password', '*.tokenValue', '*.token_value', '*.ticket'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * Logs a failure when it starts or changes, and once when it recovers, instead of on every
 * scrape: an offline node scraped every 15 s should not flood the journal.
 */
export class FailureLog {
  private readonly current = new Map<string, string>();
  private readonly noticed = new Map<string, string>();
  constructor(
    private readonly log: Logger,
    private readonly maxKeys = 10_000,
  ) {}

  failed(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.current.get(key) === message) return;
    if (this.current.size >= this.maxKeys && !this.current.has(key)) this.current.clear();
    this.current.set(key, message);
    this.log.warn({ ...fields, error: message }, 'collection failed');
  }

  /** Logs `message` (info) the first time it is seen for `key`: a condition worth knowing, not a failure. */
  noticeOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.noticed.get(key) === message) return;
    if (this.noticed.size >= this.maxKeys && !this.noticed.has(key)) this.noticed.clear();
    this.noticed.set(key, message);
    this.log.info({ ...fields, note: message }, 'collector has nothing to collect');
  }

  succeeded(key: string, fields: Record<string, unknown>): void {
    if (!this.current.has(key)) return;
    this.current.delete(key);
    this.log.info(fields, 'collection recovered');
  }
}
