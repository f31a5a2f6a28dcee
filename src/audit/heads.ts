// Publishing the heads of the hash-chained audit files: to the log, to a postgres sink's heads table, and to a metric.
//
// A head is the hash of a file's last line, with that line's event id and time. Once published
// somewhere the file's writer cannot rewrite, it pins every line up to it: a file edited and
// re-chained from some line on no longer contains the heads published after that line, and
// `ormai-proxy audit verify --config` (or `--head HASH`) says so.
import os from 'node:os';
import { silentLogger, type Logger } from '../log';
import type { ChainHead } from './chain';
import type { FileSink } from './sinks/file';
import type { PostgresSink } from './sinks/postgres';

/** Names a file's chain in the heads table: this host (the pod) and the file's path. */
export function chainSource(file: string, host: string = os.hostname()): string {
  return `${host}:${file}`;
}

export interface PublishedHead extends ChainHead {
  /** The file sink's name (`file:/path`). */
  sink: string;
  source: string;
  published_at: string;
}

export interface HeadPublisherOptions {
  files: readonly FileSink[];
  targets: readonly Pick<PostgresSink, 'name' | 'publishHead'>[];
  intervalMs: number;
  log?: Logger;
  host?: string;
}

export class HeadPublisher {
  private timer?: NodeJS.Timeout;
  private readonly last = new Map<string, PublishedHead>();
  private readonly log: Logger;
  private running?: Promise<void>;

  constructor(private readonly options: HeadPublisherOptions) {
    this.log = options.log ?? silentLogger;
  }

  start(): void {
    if (this.timer || this.options.files.length === 0) return;
    this.timer = setInterval(() => void this.publish(), this.options.intervalMs);
    this.timer.unref();
  }

  /** The last head published for each file (what the metric shows). */
  published(): PublishedHead[] {
    return [...this.last.values()];
  }

  /** Publishes each file's head that moved since it was last published; one run at a time. */
  publish(): Promise<void> {
    this.running ??= this.publishChanged().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops the timer and publishes the final heads (called once the audit queue has drained). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    await this.publish();
  }

  private async publishChanged(): Promise<void> {
    for (const file of this.options.files) {
      const head = file.head();
      if (!head || this.last.get(file.name)?.hash === head.hash) continue;
      const source = chainSource(file.file, this.options.host);
      const published: PublishedHead = { ...head, sink: file.name, source, published_at: new Date().toISOString() };
      this.log.info({ sink: file.name, source, head: head.hash, event_id: head.event_id, event_time: head.event_time }, 'audit chain head');
      for (const target of this.options.targets) {
        try {
          await target.publishHead(source, head);
        } catch (err) {
          // The event trail itself is unaffected; the head is logged above and published next time.
          this.log.warn({ sink: target.name, err: (err as Error).message }, 'audit chain head not published to the database');
        }
      }
      this.last.set(file.name, published);
    }
  }
}
