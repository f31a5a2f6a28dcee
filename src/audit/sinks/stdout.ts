// The stdout sink: one JSON line per event, the default in a container (the proxy's own logs go to stderr).
import type { AuditEvent } from '../event';
import type { AuditSink } from '../sink';

export class StdoutSink implements AuditSink {
  readonly name = 'stdout';
  private readonly ignore = (): void => undefined;

  /** `stream` is for tests; the proxy writes to process.stdout. */
  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    // A closed pipe (EPIPE) would otherwise crash the process as an unhandled 'error' event;
    // the same error reaches the write callback, which marks the sink down instead.
    stream.on('error', this.ignore);
  }

  /**
   * Resolves when the stream has handed the batch to the operating system: the most a pipe
   * can promise. One write per batch keeps lines whole and in order.
   */
  write(batch: readonly AuditEvent[]): Promise<void> {
    const text = batch.map((e) => `${JSON.stringify(e)}\n`).join('');
    return new Promise((resolve, reject) => {
      try {
        this.stream.write(text, (err?: Error | null) => (err ? reject(err) : resolve()));
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  /** process.stdout is never ended: the log collector may still be reading it. */
  async close(): Promise<void> {
    this.stream.removeListener('error', this.ignore);
  }
}
