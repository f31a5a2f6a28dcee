// Fuzz wire layer: frontend frames built by hand (any field value, any count) and a raw-socket client that logs in with SCRAM.
//
// The builders share no code with src/protocol: a mutated frame must be exactly the bytes the
// fuzzer chose, including counts and lengths that disagree with the body.
const net = require('node:net');
const { serialize } = require('pg-protocol');
const { Parser } = require('pg-protocol/dist/parser');
const { createScramClient } = require('../../dist/auth/scram');

const int16 = (v) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff);
  return b;
};
const int32 = (v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const cstr = (s) => Buffer.concat([Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'), Buffer.from([0])]);

/** type byte · int32 length (body + 4) · body. */
function frame(type, body) {
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(body.length + 4), body]);
}

/**
 * A message as data, so that mutations can change one field and re-encode with a correct length:
 * { t: 'Q', sql } · { t: 'P', name, sql, types } · { t: 'B', portal, stmt, pfmt, params, rfmt }
 * · { t: 'D'|'C', target, name } · { t: 'E', portal, maxRows } · { t: 'S' } · { t: 'H' } · { t: 'X' }.
 * `params` items are Buffers or null; optional `nparams`/`ntypes` override the counts written.
 */
function encode(m) {
  switch (m.t) {
    case 'Q':
      return frame('Q', cstr(m.sql));
    case 'P': {
      const types = m.types || [];
      return frame('P', Buffer.concat([cstr(m.name), cstr(m.sql), int16(m.ntypes ?? types.length), ...types.map(int32)]));
    }
    case 'B': {
      const pfmt = m.pfmt || [];
      const rfmt = m.rfmt || [];
      const params = m.params || [];
      const parts = [cstr(m.portal), cstr(m.stmt), int16(pfmt.length), ...pfmt.map(int16), int16(m.nparams ?? params.length)];
      for (const p of params) parts.push(p === null ? int32(-1) : Buffer.concat([int32(p.length), p]));
      parts.push(int16(rfmt.length), ...rfmt.map(int16));
      return frame('B', Buffer.concat(parts));
    }
    case 'D':
    case 'C':
      return frame(m.t, Buffer.concat([Buffer.from(m.target, 'latin1'), cstr(m.name)]));
    case 'E':
      return frame('E', Buffer.concat([cstr(m.portal), int32(m.maxRows ?? 0)]));
    case 'S':
    case 'H':
    case 'X':
      return frame(m.t, Buffer.alloc(0));
    default:
      throw new Error(`fuzz: no encoder for message type ${m.t}`);
  }
}

/** ReadyForQuery answers expected for a well-formed sequence: one per Query and per Sync. */
const readyCount = (messages) => messages.filter((m) => m.t === 'Q' || m.t === 'S').length;

/** A logged-in raw session: an inbox of parsed backend messages, with bounded waits. */
class FuzzSession {
  constructor(socket) {
    this.socket = socket;
    this.parser = new Parser();
    this.inbox = [];
    this.waiter = undefined;
    this.closed = false;
    this.parseError = undefined;
    socket.on('data', (chunk) => {
      try {
        this.parser.parse(chunk, (m) => this.inbox.push(m));
      } catch (err) {
        // The proxy sent bytes a real driver could not read: a finding, not a closed connection.
        this.parseError ??= err;
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  wake() {
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w();
  }

  static async connect(port, user, password, timeoutMs) {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const session = new FuzzSession(socket);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connect timed out')), timeoutMs);
      socket.once('connect', () => (clearTimeout(t), resolve()));
      socket.once('error', (e) => (clearTimeout(t), reject(e)));
    });
    socket.write(serialize.startup({ user, database: 'app', application_name: 'ormai-fuzz' }));
    const scram = createScramClient(password);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await session.next(deadline);
      if (!m) throw new Error(session.closed ? 'closed during login' : 'login timed out');
      if (m.name === 'authenticationSASL') socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst().toString()));
      else if (m.name === 'authenticationSASLContinue') socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(Buffer.from(m.data)).toString()));
      else if (m.name === 'authenticationSASLFinal') scram.verifyServerFinal(Buffer.from(m.data));
      else if (m.name === 'error') throw new Error(`login failed: ${m.code} ${m.message}`);
      else if (m.name === 'readyForQuery') return session;
    }
  }

  /** The next backend message, or undefined once the deadline passes or the connection is closed with nothing left. */
  async next(deadline) {
    while (this.inbox.length === 0) {
      if (this.closed || this.parseError) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => (clearTimeout(t), resolve());
      });
    }
    return this.inbox.shift();
  }

  /** Writes bytes, in a few chunks when `cuts` (offsets) are given, so the proxy reassembles frames. */
  async send(bytes, cuts = []) {
    if (this.closed) return;
    let at = 0;
    for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
      if (cut <= at) continue;
      this.socket.write(bytes.subarray(at, cut));
      at = cut;
      if (at < bytes.length) await new Promise((r) => setImmediate(r));
    }
  }

  close() {
    if (!this.closed) this.socket.destroy();
  }
}

module.exports = { encode, frame, int16, int32, cstr, readyCount, FuzzSession };
