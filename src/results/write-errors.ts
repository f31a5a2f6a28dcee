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
import { APPROVAL_MARKER } from '../analysis/rewrite/write-limits';
import { objectKey } from '../analysis/rewrite/catalog-views';
import { ProxyError } from '../errors/catalogue';
import { FIELD, readErrorFields, writeErrorFields } from '../protocol/backend/error-fields';
import * as backend from '../protocol/backend/serializer';

const UNDEFINED_COLUMN = '42703';
const INVALID_TEXT = '22P02';
/** The markers the proxy's own guards put in a failing cast (analysis/rewrite/writes.ts, foreign-keys.ts). */
const CAPPED = new RegExp(`"${AFFECTED_ROWS_MARKER}(\\d+):(\\d+)"`);
const ORPHAN = new RegExp(`"${NO_PARENT_MARKER}([^"]*)"`);
const UNHELD = new RegExp(`"${APPROVAL_MARKER}(\\d+):(\\d+|value)"`);

const SCHEMA = 0x73; // s
const TABLE = 0x74; // t
const COLUMN = 0x63; // c
const CONSTRAINT = 0x6e; // n
/** Fields that name database objects: the column, constraint, table, schema and type an error is about. */
const OBJECT_FIELDS = new Set([COLUMN, CONSTRAINT, TABLE, SCHEMA, 0x64 /* d */]);

/** What a write's error may name: see sanitizeWriteError. */
export interface WriteErrorScope {
  /** The write target's columns the agent cannot see. */
  hidden?: ReadonlySet<string>;
  /** The constraints and indexes the agent can see (catalog-views.ts objectKey); absent without a loaded catalog. */
  visibleObjects?: ReadonlySet<string>;
}

/**
 * A message that may name what the agent cannot see is replaced by a generic one. PostgreSQL
 * names the object an error is about in its fields, and that decides:
 * - a constraint or index (unique, check, foreign key, exclusion, PostgreSQL 18's not-null): the
 *   message stays only if it is one the agent can see (every column it reads visible, a foreign
 *   key's other table too). Its name may carry a hidden column's (`orders_approval_token_check`),
 *   or a prefix of one that PostgreSQL cut to 63 bytes, or a hidden table's (a foreign key of a
 *   table outside the policy, raised by an UPDATE or DELETE of its parent); one made since the
 *   catalog was loaded counts as unseen;
 * - a column (a not-null violation): the message stays unless it is a hidden one;
 * - neither, or no catalog: any occurrence of a hidden column's name in the message, in any case.
 */
export function sanitizeWriteError(frame: Buffer, scope: WriteErrorScope = {}): Buffer {
  const fields = readErrorFields(frame);
  if (!fields) return frame;
  const value = (code: number) => fields.find(([c]) => c === code)?.[1].toString('utf8');
  const capped = value(FIELD.code) === INVALID_TEXT ? CAPPED.exec(value(FIELD.message) ?? '') : null;
  if (capped) return backend.errorResponse(tooManyRows(Number(capped[1]), Number(capped[2])).toFields());
  const unheld = value(FIELD.code) === INVALID_TEXT ? UNHELD.exec(value(FIELD.message) ?? '') : null;
  if (unheld) {
    const what = unheld[2] === 'value' ? 'a value it assigns' : `it matches ${unheld[2]} rows`;
    const message = `a require_approval rule holds this write as PostgreSQL runs it (${what}), though it did not when the proxy judged it before: nothing was written`;
    return backend.errorResponse(new ProxyError('approval_required', { message }).toFields());
  }
  const orphan = value(FIELD.code) === INVALID_TEXT ? ORPHAN.exec(value(FIELD.message) ?? '') : null;
  if (orphan) return backend.errorResponse(new ProxyError('reference_not_found', { message: `"${orphan[1]}" refers to a row that does not exist` }).toFields());
  if (value(FIELD.code) === UNDEFINED_COLUMN) {
    // Without a position, like the proxy's own refusal.
    return backend.errorResponse(new ProxyError('column_not_found', { message: value(FIELD.message) ?? 'column does not exist' }).toFields());
  }
  const kept = fields.filter(([code]) => code !== FIELD.detail && code !== FIELD.hint && !OBJECT_FIELDS.has(code));
  if (namesUnseen(value, scope)) {
    const generic = value(FIELD.code) === '23502' ? 'a column the write does not set needs a value' : 'the write violates a constraint of the table';
    return writeErrorFields(frame[0], kept.map(([code, v]) => (code === FIELD.message ? [code, Buffer.from(generic)] : [code, v])));
  }
  return writeErrorFields(frame[0], kept);
}

function namesUnseen(value: (code: number) => string | undefined, { hidden = new Set(), visibleObjects }: WriteErrorScope): boolean {
  const constraint = value(CONSTRAINT);
  const column = value(COLUMN);
  if (constraint !== undefined && visibleObjects) {
    if (!visibleObjects.has(objectKey(value(SCHEMA) ?? '', value(TABLE) ?? '', constraint))) return true;
    return column !== undefined && hidden.has(column);
  }
  if (column !== undefined) return hidden.has(column);
  const lower = (value(FIELD.message) ?? '').toLowerCase();
  return [...hidden].some((name) => lower.includes(name.toLowerCase()));
}
