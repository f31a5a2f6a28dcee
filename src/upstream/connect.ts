// Opens an authenticated session to the upstream PostgreSQL: TCP, optional TLS, startup, auth.
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { createScramClient } from '../auth/scram';
import type { UpstreamTarget } from '../config/load';
import { BackendFramer, errorFields, parameterStatusOf, type BackendFrame } from '../protocol/backend/framer';

/** Why an upstream session could not be opened; `detail` is for the log only. */
export class UpstreamConnectError extends Error {
  constructor(
    message: string,
    readonly sqlstate?: string,
    /** The server's own message, when it refused the session with an ErrorResponse. */
    readonly serverMessage?: string,
  ) {
    super(message);
    this.name = 'UpstreamConnectError';
  }
}

export interface UpstreamHandshake {
  socket: net.Socket;
  framer: BackendFramer;
  /** Frames that arrived after ReadyForQuery in the same read (normally none). */
  leftover: BackendFrame[];
  processId: number;
  secretKey: Buffer;
  parameters: Map<string, string>;
}

const AUTH_OK = 0;
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;

function openSocket(target: UpstreamTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamConnectError(`connect to ${target.host}:${target.port} timed out after ${target.connectTimeoutMs} ms`));
    }, target.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamConnectError(`connect to ${target.host}:${target.port} failed: ${err.message}`));
    });
  });
}

function readOneByte(socket: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      cleanup();
      if (chunk.length !== 1) {
        reject(new UpstreamConnectError('upstream sent unexpected bytes in answer to SSLRequest'));
        return;
      }
      resolve(chunk[0]);
    };
    const onEnd = () => {
      cleanup();
      reject(new UpstreamConnectError('upstream closed the connection during TLS negotiation'));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
  });
}

async function startTls(socket: net.Socket, target: UpstreamTarget): Promise<net.Socket> {
  socket.write(serialize.requestSsl());
  const answer = await readOneByte(socket);
  if (answer !== 0x53 /* S */) {
    socket.destroy();
    throw new UpstreamConnectError('upstream does not support TLS, but upstream.tls.mode requires it');
  }
  const verify = target.tls.mode === 'verify-full';
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      host: target.host,
      servername: net.isIP(target.host) ? undefined : target.host,
      rejectUnauthorized: verify,
      ca: target.tls.ca,
      // verify-full also checks the host name; 'require' only encrypts, as in libpq.
      checkServerIdentity: verify ? tls.checkServerIdentity : () => undefined,
    });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (err) => reject(new UpstreamConnectError(`TLS to upstream failed: ${err.message}`)));
  });
}

function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
}

/**
 * Connects and authenticates; resolves once the upstream sent ReadyForQuery.
 * `params` are the startup parameters (user and database are taken from the target).
 */
export async function connectUpstream(
  target: UpstreamTarget,
  params: Record<string, string>,
  maxMessageSize: number,
): Promise<UpstreamHandshake> {
  let socket = await openSocket(target);
  try {
    if (target.tls.mode !== 'disable') socket = await startTls(socket, target);
    socket.write(serialize.startup({ user: target.user, database: target.database, ...params }));
    return await handshake(socket, target, maxMessageSize);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function handshake(socket: net.Socket, target: UpstreamTarget, maxMessageSize: number): Promise<UpstreamHandshake> {
  const framer = new BackendFramer({ maxMessageSize });
  const parameters = new Map<string, string>();
  let processId = 0;
  let secretKey = Buffer.alloc(0);
  let scram: ReturnType<typeof createScramClient> | undefined;
  let scramVerified = false;

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new UpstreamConnectError(`upstream did not complete startup within ${target.connectTimeoutMs} ms`)), target.connectTimeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => fail(new UpstreamConnectError('upstream closed the connection during startup'));
    const onError = (err: Error) => fail(new UpstreamConnectError(`upstream socket error during startup: ${err.message}`));
    const password = () => {
      if (target.password === undefined) throw new UpstreamConnectError('upstream asked for a password, but the upstream URL has none');
      return target.password;
    };

    const onData = (chunk: Buffer) => {
      try {
        const frames = framer.push(chunk);
        for (let i = 0; i < frames.length; i++) {
          const frame = frames[i];
          const body = frame.raw.subarray(5);
          switch (frame.code) {
            case 'R': {
              const kind = body.readInt32BE(0);
              if (kind === AUTH_OK) {
                // After SCRAM started, the server must have proved it knows the password.
                if (scram && !scramVerified) throw new UpstreamConnectError('upstream skipped the SCRAM server signature');
                break;
              }
              if (kind === AUTH_CLEARTEXT) socket.write(serialize.password(password()));
              else if (kind === AUTH_MD5) socket.write(serialize.password(md5Password(target.user, password(), body.subarray(4, 8))));
              else if (kind === AUTH_SASL) {
                const mechanisms = body.subarray(4).toString('utf8').split('\0').filter(Boolean);
                if (!mechanisms.includes('SCRAM-SHA-256')) throw new UpstreamConnectError(`upstream offers no supported SASL mechanism (${mechanisms.join(', ')})`);
                scram = createScramClient(password());
                socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst().toString('utf8')));
              } else if (kind === AUTH_SASL_CONTINUE && scram) {
                socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(body.subarray(4)).toString('utf8')));
              } else if (kind === AUTH_SASL_FINAL && scram) {
                scram.verifyServerFinal(body.subarray(4));
                scramVerified = true;
              } else throw new UpstreamConnectError(`upstream requested an unsupported authentication method (${kind})`);
              break;
            }
            case 'S': {
              const { name, value } = parameterStatusOf(frame);
              parameters.set(name, value);
              break;
            }
            case 'K':
              processId = body.readInt32BE(0);
              // A copy of its own: Buffer.from would take a slice of the shared 8 KB pool and keep
              // that slab alive for as long as the session lasts.
              secretKey = Buffer.alloc(body.length - 4);
              body.copy(secretKey, 0, 4);
              break;
            case 'E': {
              const { message, code } = errorFields(frame);
              throw new UpstreamConnectError(`upstream refused the session: ${message}`, code, message);
            }
            case 'N':
            case 'v':
              break;
            case 'Z':
              cleanup();
              resolve({ socket, framer, leftover: frames.slice(i + 1), processId, secretKey, parameters });
              return;
            default:
              throw new UpstreamConnectError(`unexpected message '${frame.code}' from upstream during startup`);
          }
        }
      } catch (err) {
        fail(err instanceof UpstreamConnectError ? err : new UpstreamConnectError((err as Error).message));
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
  });
}

/** Sends a CancelRequest for an upstream backend over a fresh connection. Never throws. */
export async function cancelUpstream(target: UpstreamTarget, processId: number, secretKey: Buffer): Promise<void> {
  let socket: net.Socket | undefined;
  try {
    socket = await openSocket(target);
    if (target.tls.mode !== 'disable') socket = await startTls(socket, target);
    // CancelRequest: int32 length, int32 80877102, int32 pid, then the key bytes.
    const packet = Buffer.alloc(12 + secretKey.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processId, 8);
    secretKey.copy(packet, 12);
    const s = socket;
    await new Promise<void>((resolve) => {
      s.end(packet, () => resolve());
      s.once('error', () => resolve());
    });
  } catch {
    // A cancel is best effort, as in libpq.
  } finally {
    socket?.destroy();
  }
}

/**
 * Runs one simple Query of the proxy's own on a session that has just started, before the client
 * is told it is ready: resolves with PostgreSQL's error message, or undefined when it succeeded.
 * Its answers never reach the client; what the server says about the session in between
 * (ParameterStatus, notifications) joins `leftover`, which the session relays. Rejects with
 * UpstreamConnectError when the connection fails or stays silent past `timeoutMs`.
 */
export function ownStartupQuery(upstream: UpstreamHandshake, sql: string, timeoutMs: number): Promise<string | undefined> {
  const { socket, framer } = upstream;
  return new Promise((resolve, reject) => {
    let error: string | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
    };
    const fail = (why: string) => {
      cleanup();
      reject(new UpstreamConnectError(why));
    };
    const timer = setTimeout(() => fail(`upstream did not answer the session's set-up within ${timeoutMs} ms`), timeoutMs);
    const onClose = () => fail('upstream closed the connection during the session set-up');
    const onData = (chunk: Buffer) => {
      let frames: BackendFrame[];
      try {
        frames = framer.push(chunk);
      } catch (err) {
        fail((err as Error).message);
        return;
      }
      for (let i = 0; i < frames.length; i++) {
        const frame = frames[i];
        if (frame.code === 'E') error = errorFields(frame).message ?? '';
        else if (frame.code === 'S' || frame.code === 'A') upstream.leftover.push(frame);
        else if (frame.code === 'Z') {
          cleanup();
          upstream.leftover.push(...frames.slice(i + 1));
          resolve(error);
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.write(serialize.query(sql));
  });
}
