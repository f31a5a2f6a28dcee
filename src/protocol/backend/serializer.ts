// Encoders for the messages the proxy itself sends to clients (authentication, status, errors,
// results it synthesises). Messages relayed from PostgreSQL are forwarded as raw frames instead.

import { ErrorFields } from '../../errors/catalogue';
import { Writer } from './writer';

/** Bodiless messages never change, so each is built once. */
function fixed(code: string): Buffer {
  return new Writer(code, 0).finish();
}

const PARSE_COMPLETE = fixed('1');
const BIND_COMPLETE = fixed('2');
const CLOSE_COMPLETE = fixed('3');
const NO_DATA = fixed('n');
const PORTAL_SUSPENDED = fixed('s');
const EMPTY_QUERY_RESPONSE = fixed('I');

export const parseComplete = (): Buffer => PARSE_COMPLETE;
export const bindComplete = (): Buffer => BIND_COMPLETE;
export const closeComplete = (): Buffer => CLOSE_COMPLETE;
export const noData = (): Buffer => NO_DATA;
export const portalSuspended = (): Buffer => PORTAL_SUSPENDED;
export const emptyQueryResponse = (): Buffer => EMPTY_QUERY_RESPONSE;

// Authentication requests: 'R' · int32 kind · kind-specific data.
const AUTH_OK = 0;
const AUTH_CLEARTEXT = 3;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;

export function authenticationOk(): Buffer {
  return new Writer('R', 4).int32(AUTH_OK).finish();
}

export function authenticationCleartextPassword(): Buffer {
  return new Writer('R', 4).int32(AUTH_CLEARTEXT).finish();
}

/** int32 10 · cstring mechanism* · NUL */
export function authenticationSASL(mechanisms: string[]): Buffer {
  const w = new Writer('R').int32(AUTH_SASL);
  for (const m of mechanisms) w.cstring(m);
  return w.byte(0).finish();
}

/** int32 11 · server-first-message (the rest of the message, no terminator) */
export function authenticationSASLContinue(data: Buffer | string): Buffer {
  return new Writer('R', 4 + data.length).int32(AUTH_SASL_CONTINUE).bytes(data).finish();
}

/** int32 12 · server-final-message */
export function authenticationSASLFinal(data: Buffer | string): Buffer {
  return new Writer('R', 4 + data.length).int32(AUTH_SASL_FINAL).bytes(data).finish();
}

/** 'S' · cstring name · cstring value */
export function parameterStatus(name: string, value: string): Buffer {
  return new Writer('S').cstring(name).cstring(value).finish();
}

/** 'K' · int32 processId · secret key (4 bytes in protocol 3.0, up to 256 in 3.2) */
export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  return new Writer('K', 4 + secretKey.length).int32(processId).bytes(secretKey).finish();
}

/** 'v' · int32 newest minor version supported · int32 n · n × cstring unrecognised option */
export function negotiateProtocolVersion(newestMinor: number, unrecognizedOptions: string[]): Buffer {
  const w = new Writer('v').int32(newestMinor).int32(unrecognizedOptions.length);
  for (const o of unrecognizedOptions) w.cstring(o);
  return w.finish();
}

/** 'Z' · byte status: I idle, T in a transaction, E in a failed transaction */
export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return new Writer('Z', 1).byte(status.charCodeAt(0)).finish();
}

export function errorResponse(fields: ErrorFields): Buffer {
  return noticeOrError('E', fields);
}

export function noticeResponse(fields: ErrorFields): Buffer {
  return noticeOrError('N', fields);
}

/**
 * (byte field code · cstring value)* · NUL. 'S' is the localised severity and 'V' the same
 * never-localised word (PostgreSQL 9.6+); drivers read the SQLSTATE from 'C'.
 */
function noticeOrError(code: 'E' | 'N', f: ErrorFields): Buffer {
  const w = new Writer(code, 128);
  const field = (c: string, v: string | undefined) => {
    if (v !== undefined) w.byte(c.charCodeAt(0)).cstring(v);
  };
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.code);
  field('M', f.message);
  field('D', f.detail);
  field('H', f.hint);
  field('P', f.position);
  field('R', f.routine);
  return w.byte(0).finish();
}

/** 'C' · cstring tag, e.g. "SELECT 3" or "INSERT 0 1" */
export function commandComplete(tag: string): Buffer {
  return new Writer('C', tag.length + 1).cstring(tag).finish();
}

/** 't' · int16 n · n × int32 type oid */
export function parameterDescription(oids: number[]): Buffer {
  const w = new Writer('t', 2 + 4 * oids.length).uint16(oids.length);
  for (const oid of oids) w.uint32(oid);
  return w.finish();
}

export interface FieldDescription {
  name: string;
  /** OID of the table the column comes from, or 0. */
  tableOid: number;
  /** Attribute number of the column in that table, or 0. */
  columnAttr: number;
  dataTypeOid: number;
  /** pg_type.typlen: negative for variable-width types. */
  dataTypeSize: number;
  /** pg_attribute.atttypmod: -1 when there is none. */
  typeModifier: number;
  /** 0 text, 1 binary. */
  format: number;
}

/**
 * 'T' · int16 n · n × (cstring name · int32 table oid · int16 attnum · int32 type oid
 * · int16 typlen · int32 typmod · int16 format)
 */
export function rowDescription(fields: FieldDescription[]): Buffer {
  const w = new Writer('T', 2 + fields.length * 32).uint16(fields.length);
  for (const f of fields) {
    w.cstring(f.name).uint32(f.tableOid).int16(f.columnAttr).uint32(f.dataTypeOid);
    w.int16(f.dataTypeSize).int32(f.typeModifier).int16(f.format);
  }
  return w.finish();
}

/** 'D' · int16 n · n × (int32 len, -1 for NULL · len bytes); strings are written as UTF-8. */
export function dataRow(values: (Buffer | string | null)[]): Buffer {
  const lengths = new Array<number>(values.length);
  let size = 2;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const n = v === null ? -1 : typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length;
    lengths[i] = n;
    size += 4 + Math.max(n, 0);
  }
  const w = new Writer('D', size).uint16(values.length);
  for (let i = 0; i < values.length; i++) {
    w.int32(lengths[i]);
    const v = values[i];
    if (v !== null) w.bytes(v);
  }
  return w.finish();
}

const SSL_ACCEPT = Buffer.from('S');
const SSL_REFUSE = Buffer.from('N');

/** The answer to SSLRequest is one byte with no frame around it. */
export function sslResponse(accept: boolean): Buffer {
  return accept ? SSL_ACCEPT : SSL_REFUSE;
}
