// A protocol-level client for tests that need exact control of messages (binary formats, row limits, pipelines).
// Sends with pg-protocol's serializer and the test byte builder, reads with pg-protocol's parser.
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { createScramClient } from '../../src/auth/scram';

export type Message = BackendMessage & Record<string, unknown>;

export class RawClient {
  private readonly parser = new Parser();
  private readonly inbox: Message[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) =>
      this.parser.parse(chunk, (m) => {
        this.inbox.push(m as Message);
        this.wake();
      }),
    );
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  static async connect(port: number, user: string, password: string, database = 'app'): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new RawClient(socket);
    socket.write(serialize.startup({ user, database }));
    const scram = createScramClient(password);
    for (;;) {
      const m = await client.next();
      if (m.name === 'authenticationSASL') socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst().toString()));
      else if (m.name === 'authenticationSASLContinue') socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(Buffer.from(m.data as string)).toString()));
      else if (m.name === 'authenticationSASLFinal') scram.verifyServerFinal(Buffer.from(m.data as string));
      else if (m.name === 'error') throw new Error(`login failed: ${m.message}`);
      else if (m.name === 'readyForQuery') return client;
    }
  }

  /** Bytes sent but not yet taken by the kernel: they stay here while the other end does not read. */
  get unsentBytes(): number {
    return this.socket.writableLength;
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  async next(timeoutMs = 5000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift()!;
  }

  /** Reads messages up to and including the next ReadyForQuery. */
  async untilReady(): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.next();
      out.push(m);
      if (m.name === 'readyForQuery') return out;
    }
  }

  end(): void {
    this.socket.end(serialize.end());
  }
}
