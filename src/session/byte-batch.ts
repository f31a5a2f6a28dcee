// The bytes bound for one socket within one batch of messages, written as one buffer: forwarded views of one chunk stay one view.
//
// Messages forwarded untouched are views of the chunk they arrived in (frontend/decoder.ts,
// backend/framer.ts), one after the other: a Bind, Describe, Execute and Sync of a prepared
// statement, or the BindComplete … ReadyForQuery that answer them. Such a run is sent as one view
// of that memory, without a copy; only pieces from elsewhere (a message the proxy wrote or
// changed) are copied together with it. One buffer per batch is one write(2), through the
// socket's single-buffer path rather than its writev path.

export class ByteBatch {
  private parts: Buffer[] = [];
  /** The run of adjacent views being extended: its memory, where it starts and ends, its first view. */
  private runMemory?: ArrayBufferLike;
  private runStart = 0;
  private runEnd = 0;
  private runFirst?: Buffer;
  private runViews = 0;

  get empty(): boolean {
    return this.runViews === 0 && this.parts.length === 0;
  }

  add(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.runViews > 0 && bytes.buffer === this.runMemory && bytes.byteOffset === this.runEnd) {
      this.runEnd += bytes.length;
      this.runViews++;
      return;
    }
    this.closeRun();
    this.runMemory = bytes.buffer;
    this.runStart = bytes.byteOffset;
    this.runEnd = bytes.byteOffset + bytes.length;
    this.runFirst = bytes;
    this.runViews = 1;
  }

  /** Everything added, in order, as one buffer (undefined when nothing was); the batch is empty again. */
  take(): Buffer | undefined {
    this.closeRun();
    const parts = this.parts;
    if (parts.length === 0) return undefined;
    this.parts = [];
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  private closeRun(): void {
    if (this.runViews === 0) return;
    this.parts.push(this.runViews === 1 ? this.runFirst! : Buffer.from(this.runMemory!, this.runStart, this.runEnd - this.runStart));
    this.runViews = 0;
    this.runFirst = undefined;
    this.runMemory = undefined;
  }
}
