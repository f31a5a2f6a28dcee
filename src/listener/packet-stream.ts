// Pull-style reading of decoded packets from a socket during startup and authentication.
import type net from 'node:net';
import type { FrontendDecoder } from '../protocol/frontend/decoder';
import { ProxyError } from '../errors/catalogue';
import type { FrontendMessage, StartupPacket } from '../protocol/frontend/messages';

export type Packet = StartupPacket | FrontendMessage;

/** The client closed its connection before the handshake finished. */
export class ClientGone extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientGone';
  }
}

/**
 * Before authentication a client has nothing to pipeline beyond a request to encrypt, its
 * startup packet and an answer or two: more messages waiting than this is a flood.
 */
const MAX_QUEUED = 16;

export class PacketStream {
  private readonly queue: Packet[] = [];
  private waiter?: { resolve: (p: Packet) => void; reject: (e: Error) => void };
  private failure?: Error;
  private socket?: net.Socket;
  private readonly onData = (chunk: Buffer) => {
    try {
      this.queue.push(...this.decoder.push(chunk));
      if (this.queue.length > MAX_QUEUED) throw new ProxyError('protocol_violation', { message: 'too many messages before authentication' });
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.wake();
  };
  private readonly onEnd = () => this.fail(new ClientGone());

  constructor(readonly decoder: FrontendDecoder) {}

  attach(socket: net.Socket): void {
    this.detach();
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  /** Stops reading; returns what was decoded but not yet consumed. */
  detach(): Packet[] {
    if (this.socket) {
      this.socket.off('data', this.onData);
      this.socket.off('close', this.onEnd);
      this.socket.off('error', this.onEnd);
      this.socket = undefined;
    }
    return this.queue.splice(0);
  }

  /** Decodes bytes that arrived together with an SSLRequest/GSSENCRequest once it was answered 'N'. */
  resumeDecoding(): void {
    try {
      this.queue.push(...this.decoder.resume());
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.wake();
  }

  next(): Promise<Packet> {
    if (this.failure) return Promise.reject(this.failure);
    const packet = this.queue.shift();
    if (packet) return Promise.resolve(packet);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  private wake(): void {
    if (!this.waiter || this.queue.length === 0) return;
    const { resolve } = this.waiter;
    this.waiter = undefined;
    resolve(this.queue.shift()!);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const { reject } = this.waiter;
      this.waiter = undefined;
      reject(this.failure);
    }
  }
}
