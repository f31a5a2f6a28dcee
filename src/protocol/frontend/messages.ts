// Types of the messages a client sends to the proxy, and the wire constants that name them.
//
// Every regular message keeps its whole frame in `raw` (type byte, int32 length, body) so a
// stage that does not change it can forward it byte for byte. `raw` and any Buffer field are
// views into the bytes the decoder was given: copy them if you keep them past the message's
// handling, or they pin the whole network chunk in memory.

/** Startup packets carry a request code instead of a protocol version (PostgreSQL's pqcomm.h). */
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a startup packet may not be longer. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

/** PostgreSQL 18 accepts cancel keys of up to 256 bytes (protocol 3.2); 3.0 keys are 4 bytes. */
export const MAX_CANCEL_KEY_LENGTH = 256;

/**
 * Packets sent before the first regular message: no type byte.
 *   int32 length (including itself) · int32 code · body
 * SSLRequest and GSSENCRequest have no body. CancelRequest: int32 processId · key bytes.
 * StartupMessage: code is major << 16 | minor, then (cstring name, cstring value)* and a NUL.
 */
export type StartupPacket =
  | { type: 'SSLRequest' }
  | { type: 'GSSENCRequest' }
  | { type: 'CancelRequest'; processId: number; secretKey: Buffer }
  | { type: 'StartupMessage'; majorVersion: number; minorVersion: number; params: Map<string, string> };

/**
 * Regular messages: byte type · int32 length (including itself, not the type byte) · body.
 * Layouts of the bodies (counts are unsigned int16, as PostgreSQL reads them):
 *   Q  cstring sql
 *   P  cstring name · cstring sql · int16 n · n × int32 type oid
 *   B  cstring portal · cstring statement · int16 nf · nf × int16 format
 *      · int16 np · np × (int32 len, -1 = NULL · len bytes) · int16 nr · nr × int16 format
 *   D  byte 'S'|'P' · cstring name          C  byte 'S'|'P' · cstring name
 *   E  cstring portal · int32 maxRows (0 = all)
 *   S, H, X, c  empty body                  d  bytes        f  cstring message
 *   F  function call (refused, left raw)    p  password or SASL data (meaning depends on auth state)
 */
export type FrontendMessage =
  | { type: 'Query'; sql: string; raw: Buffer }
  | { type: 'Parse'; name: string; sql: string; paramTypes: number[]; raw: Buffer }
  | {
      type: 'Bind';
      portal: string;
      statement: string;
      paramFormats: number[];
      params: (Buffer | null)[];
      resultFormats: number[];
      raw: Buffer;
    }
  | { type: 'Describe'; target: 'S' | 'P'; name: string; raw: Buffer }
  | { type: 'Execute'; portal: string; maxRows: number; raw: Buffer }
  | { type: 'Close'; target: 'S' | 'P'; name: string; raw: Buffer }
  | { type: 'Sync'; raw: Buffer }
  | { type: 'Flush'; raw: Buffer }
  | { type: 'Terminate'; raw: Buffer }
  | { type: 'CopyData'; data: Buffer; raw: Buffer }
  | { type: 'CopyDone'; raw: Buffer }
  | { type: 'CopyFail'; message: string; raw: Buffer }
  | { type: 'FunctionCall'; raw: Buffer }
  | { type: 'AuthResponse'; data: Buffer; raw: Buffer };

/** Format codes in Bind: 0 text, 1 binary; anything else is refused by PostgreSQL too. */
export const TEXT_FORMAT = 0;
export const BINARY_FORMAT = 1;
