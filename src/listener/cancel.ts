// Maps the cancel keys the proxy hands to clients onto sessions; forged or stale keys cancel nothing.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

interface Entry {
  key: Buffer;
  cancel: () => void;
}

export class CancelRegistry {
  private readonly entries = new Map<number, Entry>();

  /** Issues a fresh (processId, secretKey) pair for a session. */
  register(cancel: () => void): { processId: number; secretKey: Buffer } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.entries.has(processId));
    const secretKey = randomBytes(4);
    this.entries.set(processId, { key: secretKey, cancel });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.entries.delete(processId);
  }

  /** Returns true when the pair matched a live session (whose cancel was then requested). */
  cancel(processId: number, secretKey: Buffer): boolean {
    const entry = this.entries.get(processId);
    if (!entry || entry.key.length !== secretKey.length || !timingSafeEqual(entry.key, secretKey)) return false;
    entry.cancel();
    return true;
  }

  get size(): number {
    return this.entries.size;
  }
}
