// The file sink: hash-chained JSON lines, fsynced per batch (or with a later one), continuing the chain of the file it finds.
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger, type Logger } from '../../log';
import { chainLine, checkLine, GENESIS_HASH, headOf, type ChainHead } from '../chain';
import type { PrekeyedHmac } from '../hmac';
import type { AuditEvent } from '../event';
import type { AuditSink } from '../sink';

/** Where the tail search starts; a line longer than this (a large write's changes) doubles it. */
const TAIL_CHUNK = 64 * 1024;

export class FileSinkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileSinkError';
  }
}

/**
 * One writer per file: two processes appending to the same file would interleave two chains.
 * Give each sidecar its own file (e.g. a path with the pod name).
 */
export class FileSink implements AuditSink {
  readonly name: string;
  private handle?: FileHandle;
  /** Bytes of complete, chained lines written. */
  private size = 0;
  private lastHash = GENESIS_HASH;
  private lastEvent?: { id: string; time: string };
  /** The same at the last fsync: what a failed write or fsync is cut back to. */
  private synced: { size: number; hash: string; event?: { id: string; time: string } } = { size: 0, hash: GENESIS_HASH };
  /** A cut back that failed: the next open makes it before reading the chain's tail. */
  private cutTo?: number;
  private opening?: Promise<void>;
  declare private readonly key?: PrekeyedHmac;

  /** `key`: the chain key (audit.key_file); every line is then keyed, and the file must be keyed with it already. */
  constructor(
    readonly file: string,
    private readonly log: Logger = silentLogger,
    key?: PrekeyedHmac,
  ) {
    this.name = `file:${file}`;
    Object.defineProperty(this, 'key', { value: key, enumerable: false });
  }

  /** Whether lines are keyed. */
  get keyed(): boolean {
    return this.key !== undefined;
  }

  /** The chain's last line as written and fsynced (undefined before the file is opened or while it is empty). */
  head(): ChainHead | undefined {
    const { hash, event } = this.synced;
    if (hash === GENESIS_HASH) return undefined;
    return { hash, ...(event ? { event_id: event.id, event_time: event.time } : {}) };
  }

  /** Opens (creating if needed) and reads the last hash of the file, so that a restarted proxy continues its chain. */
  open(): Promise<void> {
    if (this.handle) return Promise.resolve();
    this.opening ??= this.openFile().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openFile(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    // a+: appends always go to the end, and positioned reads of the tail still work.
    const handle = await open(this.file, 'a+', 0o600);
    try {
      let { size } = await handle.stat();
      // Only this file, and only when longer: one moved aside (and a new one begun) is not cut.
      if (this.cutTo !== undefined && size > this.cutTo) {
        await handle.truncate(this.cutTo);
        size = this.cutTo;
      }
      this.cutTo = undefined;
      const tail = await this.readTail(handle, size);
      // What a previous process wrote may never have been fsynced: the tail counts as persisted (and
      // its head may be published) only once it is.
      await handle.sync();
      this.size = tail.size;
      this.lastHash = tail.hash;
      this.lastEvent = tail.event;
      this.synced = { size: tail.size, hash: tail.hash, event: tail.event };
      this.handle = handle;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * The last complete line's hash and the size up to it. Bytes after the last newline are a
   * batch a crash interrupted: it was never fsynced, so never confirmed to anyone, and it is cut
   * off (with a warning) so that the chain goes on from the last whole line.
   */
  private async readTail(handle: FileHandle, size: number): Promise<{ size: number; hash: string; event?: { id: string; time: string } }> {
    if (size === 0) return { size: 0, hash: GENESIS_HASH };
    for (let chunk = TAIL_CHUNK; ; chunk *= 2) {
      const start = Math.max(0, size - chunk);
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      const lastNewline = buf.lastIndexOf(0x0a);
      const lineStart = lastNewline > 0 ? buf.lastIndexOf(0x0a, lastNewline - 1) + 1 : 0;
      // Not yet the whole last line (or the start of the partial one) in view: read more.
      if (start > 0 && (lastNewline < 0 || lineStart === 0)) continue;
      const complete = lastNewline < 0 ? 0 : start + lastNewline + 1;
      if (complete < size) {
        // Only what looks like the start of one of our lines is cut; anything else is not our file.
        if (buf[complete - start] !== 0x7b) throw new FileSinkError(`${this.file} does not end like an audit file; refusing to append`);
        this.log.warn({ sink: this.name, bytes: size - complete }, 'audit file ends in an unfinished line (an interrupted write); cutting it off');
        await handle.truncate(complete);
      }
      if (complete === 0) return { size: 0, hash: GENESIS_HASH };
      const line = buf.subarray(lineStart, lastNewline).toString('utf8');
      const head = headOf(line);
      // Appending after a line that is not ours would start a chain nobody can verify; refuse,
      // which keeps the sink down (and writes refused) until an operator looks at the file.
      if (!head) throw new FileSinkError(`the last line of ${this.file} is not a hash-chained audit event; refusing to append`);
      this.checkKeying(line, head.keyed);
      return { size: complete, hash: head.hash, ...(head.event_id && head.event_time ? { event: { id: head.event_id, time: head.event_time } } : {}) };
    }
  }

  /**
   * A chain goes on under the keying it was written with: keyed lines after unkeyed ones (or
   * under another key) would verify with nothing. The sink stays down, and says why, until the
   * operator moves the file aside or restores the key it was written with.
   */
  private checkKeying(line: string, keyed: boolean): void {
    if (keyed !== this.keyed) {
      throw new FileSinkError(
        keyed
          ? `${this.file} is keyed but audit.key_file is not set: restore the key, or move the file aside (verify it with its key first) to start a new chain`
          : `${this.file} was written without a key and audit.key_file is now set: move the file aside (verify it first) to start a keyed chain, or unset the key`,
      );
    }
    if (!keyed) return;
    const prev = (JSON.parse(line) as { prev_hash?: string }).prev_hash ?? '';
    if (!checkLine(line, prev, this.key).ok) {
      throw new FileSinkError(`the last line of ${this.file} does not verify with the configured audit key (another key, or an edit): restore the key it was written with, or move the file aside`);
    }
  }

  /** Appends the batch's lines; with `sync` (the default) fsyncs them, and every line written before them. */
  async write(batch: readonly AuditEvent[], sync = true): Promise<void> {
    await this.open();
    const handle = this.handle!;
    let hash = this.lastHash;
    let data: Buffer;
    try {
      const lines: string[] = [];
      for (const event of batch) {
        const linked = chainLine(event, hash, this.key);
        lines.push(linked.line);
        hash = linked.hash;
      }
      data = Buffer.from(lines.join(''), 'utf8');
      let written = 0;
      while (written < data.length) written += (await handle.write(data, written, data.length - written)).bytesWritten;
      if (sync) await handle.sync();
    } catch (err) {
      await this.rollback(handle);
      throw err;
    }
    this.size += data.length;
    this.lastHash = hash;
    const last = batch[batch.length - 1];
    if (last) this.lastEvent = { id: last.id, time: last.time };
    if (sync) this.markSynced();
  }

  /** Fsyncs the lines written without it. */
  async sync(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined || this.synced.size === this.size) return;
    try {
      await handle.sync();
    } catch (err) {
      await this.rollback(handle);
      throw err;
    }
    this.markSynced();
  }

  private markSynced(): void {
    this.synced = { size: this.size, hash: this.lastHash, event: this.lastEvent };
  }

  /**
   * Cuts the file back to its last fsynced line, so that the retry (the failed batch and every
   * batch written since that fsync) does not append second copies: after a failed fsync, what
   * was written since is not known to be on disk. If even that fails, the file is reopened
   * before the retry, and the reopening cuts it first (or fails, and is retried).
   */
  private async rollback(handle: FileHandle): Promise<void> {
    this.size = this.synced.size;
    this.lastHash = this.synced.hash;
    this.lastEvent = this.synced.event;
    try {
      await handle.truncate(this.size);
    } catch {
      this.cutTo = this.size;
      this.handle = undefined;
      await handle.close().catch(() => undefined);
    }
  }

  /** Closes the file, after an fsync of what is written (at shutdown the log has asked for it already). */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined && this.synced.size !== this.size) await handle.sync().catch(() => undefined);
    await handle?.close();
  }
}
