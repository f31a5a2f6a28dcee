// Session statements: the SET/SHOW allow-lists, the statement_timeout bound, transaction characteristics.
import type { Node, VariableSetStmt, VariableShowStmt } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import type { AnalysisContext } from './types';

/**
 * What the agent may SET, SET LOCAL or RESET: presentation, its own timeouts and the isolation
 * level of its transactions. Role, authorization, search_path, encoding, read-only mode and
 * custom (dotted) settings such as a tenant id belong to the proxy (invariant I8), so they are
 * simply not on the list.
 */
export const SETTABLE: ReadonlySet<string> = new Set([
  'application_name',
  'datestyle',
  'intervalstyle',
  'timezone',
  'extra_float_digits',
  'bytea_output',
  'client_min_messages',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'statement_timeout',
  // What SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL sets (JDBC, SQLAlchemy).
  'default_transaction_isolation',
]);

/**
 * What the agent may SHOW: the settable ones plus read-only facts drivers ask for. The server
 * version is in the ParameterStatus every client receives at connect; search_path is the value
 * the proxy pins at startup, which no statement of the agent can change (SET, SET LOCAL, RESET
 * and set_config of it are refused; RESET ALL and DISCARD ALL return to the startup value).
 * SHOW ALL stays refused: it lists every setting of the server.
 */
export const SHOWABLE: ReadonlySet<string> = new Set([
  ...SETTABLE,
  'server_version',
  'server_version_num',
  'server_encoding',
  'client_encoding',
  'standard_conforming_strings',
  'transaction_isolation',
  'transaction_read_only',
  'integer_datetimes',
  'max_identifier_length',
  'search_path',
]);

/** Statements PostgreSQL's grammar turns into ordinary settings; named back as the agent wrote them. */
const SPELLED: ReadonlyMap<string, string> = new Map([
  ['role', 'ROLE'],
  ['session_authorization', 'SESSION AUTHORIZATION'],
]);

const ISOLATION_LEVELS = new Set(['read uncommitted', 'read committed', 'repeatable read', 'serializable']);

/** Checks a SET / RESET statement; returns its kind ('transaction' for SET TRANSACTION). */
export function checkSet(stmt: VariableSetStmt, ctx: AnalysisContext): 'session' | 'transaction' {
  const verb = stmt.kind === 'VAR_RESET' ? 'RESET' : stmt.is_local ? 'SET LOCAL' : 'SET';
  switch (stmt.kind) {
    case 'VAR_SET_MULTI':
      if (stmt.name === 'TRANSACTION') {
        checkTransactionOptions(stmt.args, 'SET TRANSACTION');
        return 'transaction';
      }
      if (stmt.name === 'SESSION CHARACTERISTICS') {
        checkTransactionOptions(stmt.args, 'SET SESSION CHARACTERISTICS');
        return 'session';
      }
      // SET TRANSACTION SNAPSHOT imports another session's snapshot: not the agent's business.
      throw new ProxyError('setting_not_allowed', { message: `SET ${stmt.name ?? ''} is not allowed` });
    case 'VAR_RESET_ALL':
      // Pools send it to tidy a session (asyncpg, psycopg). PostgreSQL resets every setting to
      // its session default, the value it had after startup (ResetAllOptions: reset_val, which
      // startup parameters set). The proxy pins search_path, statement_timeout,
      // standard_conforming_strings and read-only mode as startup parameters, so RESET ALL
      // returns them to the policy's values; role and session authorization are not reset by it.
      return 'session';
    case 'VAR_SET_VALUE':
    case 'VAR_SET_DEFAULT':
    case 'VAR_RESET': {
      // GUC names are case-insensitive; a quoted "TimeZone" arrives with its case intact.
      const name = (stmt.name ?? '').toLowerCase();
      if (!SETTABLE.has(name)) {
        throw new ProxyError('setting_not_allowed', { message: `${verb} ${SPELLED.get(name) ?? name} is not allowed` });
      }
      // SET ... TO DEFAULT and RESET return to the session's own value, which the proxy set.
      if (name === 'statement_timeout' && stmt.kind === 'VAR_SET_VALUE') checkStatementTimeout(stmt.args, ctx);
      if (name === 'idle_in_transaction_session_timeout' && stmt.kind === 'VAR_SET_VALUE') checkIdleTimeout(stmt.args, ctx);
      if (name === 'client_min_messages' && stmt.kind === 'VAR_SET_VALUE') checkMessageLevel(stmt.args);
      if (name === 'default_transaction_isolation' && stmt.kind === 'VAR_SET_VALUE') checkIsolationLevel(stmt.args);
      return 'session';
    }
    default:
      // VAR_SET_CURRENT (SET ... FROM CURRENT) only makes sense in function definitions.
      throw new ProxyError('statement_not_understood', { message: `${verb} ${stmt.name ?? ''} FROM CURRENT is not supported` });
  }
}

export function checkShow(stmt: VariableShowStmt): void {
  const name = (stmt.name ?? '').toLowerCase();
  if (SHOWABLE.has(name)) return;
  throw new ProxyError('setting_not_allowed', {
    message: `SHOW ${name === 'all' ? 'ALL' : SPELLED.get(name) ?? name} is not allowed`,
    hint: `Settings that can be shown: ${[...SHOWABLE].join(', ')}.`,
  });
}

/**
 * BEGIN / START TRANSACTION / SET TRANSACTION options. Isolation level, READ ONLY and
 * [NOT] DEFERRABLE pass; READ WRITE is refused because the proxy owns read-only mode.
 */
export function checkTransactionOptions(options: Node[] | undefined, statement: string): void {
  for (const option of options ?? []) {
    const def = 'DefElem' in option ? option.DefElem : undefined;
    const value = constValue(def?.arg);
    switch (def?.defname) {
      case 'transaction_isolation':
        if (typeof value === 'string' && ISOLATION_LEVELS.has(value)) continue;
        break;
      case 'transaction_read_only':
        if (value === 1) continue;
        throw new ProxyError('setting_not_allowed', {
          message: `${statement} READ WRITE is not allowed`,
          hint: 'The proxy controls read-only mode. Leave out READ WRITE: writes the policy allows work without it.',
        });
      case 'transaction_deferrable':
        if (value === 0 || value === 1) continue;
        break;
    }
    throw new ProxyError('statement_not_understood', {
      message: `${statement} option ${def?.defname ?? '?'} is not understood`,
    });
  }
}

/**
 * client_min_messages below NOTICE (debug1..debug5, debug, log) makes PostgreSQL send the
 * session its internal DEBUG and LOG messages: plan trees, statement text, catalog and lock
 * details of the proxy's own session. The agent may choose how quiet it wants it, not louder.
 */
const MESSAGE_LEVELS: ReadonlySet<string> = new Set(['notice', 'warning', 'error']);

function checkMessageLevel(args: Node[] | undefined): void {
  const text = args?.length === 1 ? settingText(args[0]) : undefined;
  if (text !== undefined && MESSAGE_LEVELS.has(text.trim().toLowerCase())) return;
  throw new ProxyError('setting_not_allowed', {
    message: `client_min_messages ${text === undefined ? 'value' : `"${text}"`} is not allowed`,
    hint: 'client_min_messages may be notice (the default), warning or error; debug and log levels are not available.',
  });
}

/** PostgreSQL matches enum values case-insensitively (config_enum_lookup_by_name), nothing else. */
function checkIsolationLevel(args: Node[] | undefined): void {
  const text = args?.length === 1 ? settingText(args[0]) : undefined;
  if (text !== undefined && ISOLATION_LEVELS.has(text.toLowerCase())) return;
  throw new ProxyError('setting_not_allowed', {
    message: `default_transaction_isolation ${text === undefined ? 'value' : `"${text}"`} is not allowed`,
    hint: "Give one of 'read uncommitted', 'read committed', 'repeatable read', 'serializable'.",
  });
}

function checkStatementTimeout(args: Node[] | undefined, ctx: AnalysisContext): void {
  const max = ctx.statementTimeoutMaxMs;
  if (max === undefined) return;
  const text = args?.length === 1 ? settingText(args[0]) : undefined;
  const ms = text === undefined ? undefined : parseTimeoutMs(text);
  if (ms === undefined || ms < 0) {
    throw new ProxyError('setting_not_allowed', {
      message: 'invalid value for statement_timeout',
      hint: `Give a number of milliseconds (e.g. 1000) or a value with a unit (us, ms, s, min, h, d), at most ${max} ms.`,
    });
  }
  if (ms === 0) {
    throw new ProxyError('statement_timeout_raise', {
      message: `statement_timeout may only be lowered: 0 would disable it (the limit is ${max} ms)`,
    });
  }
  if (ms > max) {
    throw new ProxyError('statement_timeout_raise', {
      message: `statement_timeout may only be lowered: ${ms} ms is above the limit of ${max} ms`,
    });
  }
}

/**
 * idle_in_transaction_session_timeout ends a session that holds a transaction open and idle (its
 * snapshot holds back vacuum, its locks stay). The database's own value, or the policy's
 * idle_in_transaction_timeout_ms, may only be lowered: 0 would disable it.
 */
function checkIdleTimeout(args: Node[] | undefined, ctx: AnalysisContext): void {
  const max = ctx.idleInTransactionMaxMs;
  if (max === undefined) {
    throw new ProxyError('setting_not_allowed', {
      message: "idle_in_transaction_session_timeout is the database's: the policy sets no idle_in_transaction_timeout_ms the agent may lower",
      hint: 'Keep transactions short instead; RESET idle_in_transaction_session_timeout returns to the database value.',
    });
  }
  const text = args?.length === 1 ? settingText(args[0]) : undefined;
  const ms = text === undefined ? undefined : parseTimeoutMs(text);
  if (ms === undefined || ms <= 0 || ms > max) {
    const why = ms === undefined || ms < 0 ? 'the value is not a time it takes' : ms === 0 ? '0 would disable it' : `${ms} ms is above the limit`;
    throw new ProxyError('setting_not_allowed', {
      message: `idle_in_transaction_session_timeout may only be lowered: ${why} (the limit is ${max} ms)`,
      hint: `Give a number of milliseconds (e.g. 1000) or a value with a unit (us, ms, s, min, h, d), from 1 ms to ${max} ms.`,
    });
  }
}

/** A constant as the tree holds it; note that libpg-query omits zero and false (`ival: {}`). */
function constValue(node: Node | undefined): number | string | boolean | undefined {
  if (!node || !('A_Const' in node)) return undefined;
  const c = node.A_Const;
  if (c.ival) return c.ival.ival ?? 0;
  if (c.sval) return c.sval.sval ?? '';
  if (c.fval) return c.fval.fval ?? '';
  if (c.boolval) return c.boolval.boolval ?? false;
  return undefined;
}

/** The text PostgreSQL hands to the setting's input routine (flatten_set_variable_args). */
function settingText(node: Node): string | undefined {
  const value = constValue(node);
  return typeof value === 'number' ? String(value) : typeof value === 'string' ? value : undefined;
}

const C_SPACE = '[ \\t\\n\\v\\f\\r]';
const INTEGER = new RegExp(`^${C_SPACE}*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)`);
const DECIMAL = new RegExp(`^${C_SPACE}*[+-]?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?`);
const UNIT_AND_REST = new RegExp(`^${C_SPACE}*(?:([^ \\t\\n\\v\\f\\r]{1,3})${C_SPACE}*)?$`);

/** Units of a millisecond setting, largest first, as in PostgreSQL's conversion table. */
const TIME_UNITS: ReadonlyArray<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['min', 60_000],
  ['s', 1000],
  ['ms', 1],
  ['us', 1 / 1000],
];

/**
 * A statement_timeout value in ms, computed exactly as PostgreSQL's parse_int does for a
 * setting in ms (strtol with base 0, so '010' is octal; a float when followed by '.' or 'e';
 * case-sensitive units; half-to-even rounding), or undefined when PostgreSQL would reject it
 * or the proxy cannot be sure of PostgreSQL's reading (hex floats, huge digit strings).
 */
export function parseTimeoutMs(text: string): number | undefined {
  let value: number;
  let rest: string;
  const int = INTEGER.exec(text);
  const next = int ? text[int[0].length] : text[0];
  if (next === '.' || next === 'e' || next === 'E') {
    const dec = DECIMAL.exec(text);
    if (!dec) return undefined;
    value = Number(dec[0].trim());
    rest = text.slice(dec[0].length);
  } else if (int) {
    const digits = int[1];
    if (digits.length > 15) return undefined; // far out of range anyway; avoids inexact parsing
    const negative = int[0].trimStart().startsWith('-');
    const radix = /^0[xX]/.test(digits) ? 16 : digits.length > 1 && digits[0] === '0' ? 8 : 10;
    const magnitude = parseInt(radix === 16 ? digits.slice(2) : digits, radix);
    value = negative ? -magnitude : magnitude;
    rest = text.slice(int[0].length);
  } else {
    return undefined;
  }
  if (!Number.isFinite(value)) return undefined;
  const unitMatch = UNIT_AND_REST.exec(rest);
  if (!unitMatch) return undefined;
  const unit = unitMatch[1];
  if (unit !== undefined) {
    const i = TIME_UNITS.findIndex(([name]) => name === unit);
    if (i < 0) return undefined;
    value *= TIME_UNITS[i][1];
    // A fractional value is first rounded to a multiple of the next smaller unit ('1.5h').
    if (i + 1 < TIME_UNITS.length) value = rint(value / TIME_UNITS[i + 1][1]) * TIME_UNITS[i + 1][1];
  }
  value = rint(value);
  return value > 2147483647 || value < -2147483648 ? undefined : value;
}

/** C's rint() under the default rounding mode: halves go to the even neighbour. */
function rint(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
