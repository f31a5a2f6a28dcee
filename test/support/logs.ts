// A pino logger whose lines a test can read.
import { Writable } from 'node:stream';
import pino from 'pino';

/** A logger at `level` whose lines (JSON, one each) are kept for inspection. */
export function capturingLogger(level: pino.LevelWithSilent = 'debug'): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}
