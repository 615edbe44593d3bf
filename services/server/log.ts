// pino JSON logs on stderr; quiet by default (a line at start and stop, then only problems).
import pino, { type Logger } from 'pino';

export function createLogger(level: string, name = 'berthd'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
