// Errors the database raises for a write, reduced to what the agent may see.
//
// A write runs against the real table, so PostgreSQL's error can describe more of it than the
// policy shows: a NOT NULL or CHECK violation's DETAIL prints the whole new row ("Failing row
// contains (…)", hidden columns included), and a missing column's HINT may suggest the name of
// a hidden one. So DETAIL and HINT are dropped, and a missing column is reported exactly as the
// proxy reports a hidden one, so that the two cannot be told apart. The affected-row guard's
// failure (analysis/rewrite/writes.ts) becomes max_affected_rows_exceeded.
import { NO_PARENT_MARKER } from '../analysis/rewrite/foreign-keys';
import { AFFECTED_ROWS_MARKER, tooManyRows } from '../analysis/rewrite/writes';
import { ProxyError } from '../errors/catalogue';
import { FIELD, readErrorFields, writeErrorFields } from '../protocol/backend/error-fields';
import * as backend from '../protocol/backend/serializer';

const UNDEFINED_COLUMN = '42703';
const INVALID_TEXT = '22P02';
/** The markers the proxy's own guards put in a failing cast (analysis/rewrite/writes.ts, foreign-keys.ts). */
const CAPPED = new RegExp(`"${AFFECTED_ROWS_MARKER}(\\d+):(\\d+)"`);
const ORPHAN = new RegExp(`"${NO_PARENT_MARKER}([^"]*)"`);

/** Fields that name database objects: the column, constraint, table, schema and type an error is about. */
const OBJECT_FIELDS = new Set([0x63 /* c */, 0x6e /* n */, 0x74 /* t */, 0x73 /* s */, 0x64 /* d */]);

/**
 * `hidden`: the write target's columns the agent cannot see; a message naming one is replaced
 * by a generic one: a NOT NULL violation names its column, and a constraint or index that
 * PostgreSQL named after its column (`orders_approval_token_check`, `…_key`, `…_fkey`) carries
 * the name inside its own, so any occurrence counts, in any case.
 */
export function sanitizeWriteError(frame: Buffer, hidden: ReadonlySet<string> = new Set()): Buffer {
  const fields = readErrorFields(frame);
  if (!fields) return frame;
  const value = (code: number) => fields.find(([c]) => c === code)?.[1].toString('utf8');
  const capped = value(FIELD.code) === INVALID_TEXT ? CAPPED.exec(value(FIELD.message) ?? '') : null;
  if (capped) return backend.errorResponse(tooManyRows(Number(capped[1]), Number(capped[2])).toFields());
  const orphan = value(FIELD.code) === INVALID_TEXT ? ORPHAN.exec(value(FIELD.message) ?? '') : null;
  if (orphan) return backend.errorResponse(new ProxyError('reference_not_found', { message: `"${orphan[1]}" refers to a row that does not exist` }).toFields());
  if (value(FIELD.code) === UNDEFINED_COLUMN) {
    // Without a position, like the proxy's own refusal.
    return backend.errorResponse(new ProxyError('column_not_found', { message: value(FIELD.message) ?? 'column does not exist' }).toFields());
  }
  const kept = fields.filter(([code]) => code !== FIELD.detail && code !== FIELD.hint && !OBJECT_FIELDS.has(code));
  const message = value(FIELD.message) ?? '';
  const lower = message.toLowerCase();
  if ([...hidden].some((name) => lower.includes(name.toLowerCase()))) {
    const generic = value(FIELD.code) === '23502' ? 'a column the write does not set needs a value' : 'the write violates a constraint of the table';
    return writeErrorFields(frame[0], kept.map(([code, v]) => (code === FIELD.message ? [code, Buffer.from(generic)] : [code, v])));
  }
  return writeErrorFields(frame[0], kept);
}
