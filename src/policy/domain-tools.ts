// A policy's domain tools (`tools:`): their declarations checked at load, and each statement's `:name` parameters compiled to `$n` with PostgreSQL's own scanner.
//
// A domain tool is one statement written against the tables as the agent sees them. It gets no
// privilege beyond the agent's: the call runs through the agent's own session, so the tenant
// predicate, hidden and masked columns, the row cap, write grants, reasons and approvals are
// added or enforced by the ordinary pipeline exactly as for SQL from the wire (docs/domain-tools.md).
//
// Parameters are found among the scanner's tokens, never by a pattern over the text: a `:x`
// inside a string literal, a quoted identifier or a comment is one token of its own (SCONST,
// IDENT, C_COMMENT), and `::` (TYPECAST) and `:=` are tokens apart from `:`.
import type { Node } from '@pgsql/types';
import { parseStatements, scanTokens } from '../analysis/parser';
import { GrammarError } from '../analysis/wasm-parser';
import { ProxyError } from '../errors/catalogue';
import type { DomainParamType, RawPolicy } from './schema';

export type DomainToolDecl = RawPolicy['tools'][number];

/**
 * Namespaces of the proxy's own tools (db.query, approvals.status). A domain tool may not take
 * one, nor a namespace that starts with one and `_`: without its dot, `db_describe.schema` is
 * db_describe_schema, the wire name of db.describe_schema.
 */
export const RESERVED_NAMESPACES: readonly string[] = ['db', 'approvals', 'ormai'];

/**
 * Parameter names the tool layer gives a meaning of its own: reason and dry_run are the
 * arguments a write domain tool gets from the proxy; the audit's redaction of a refused call
 * (src/tools/redact.ts) keeps the values of the others as names, so a parameter so named could
 * put a value in the audit trail in clear.
 */
export const RESERVED_PARAMS: readonly string[] = ['reason', 'dry_run', 'model', 'select', 'group_by', 'order_by', 'aggregates', 'approval_id', 'sql', 'is_null'];

/** The type each declared type is bound as: `CAST($n AS <type>)` in the compiled statement. */
export const PARAM_SQL_TYPES: Readonly<Record<DomainParamType, string>> = {
  integer: 'bigint',
  number: 'numeric',
  text: 'text',
  boolean: 'boolean',
  date: 'date',
  timestamp: 'timestamptz',
  uuid: 'uuid',
};

/** What both model APIs accept as a tool name (src/tools/names.ts). */
const MAX_WIRE_NAME = 64;

export interface DomainToolTemplate {
  decl: DomainToolDecl;
  /** The statement with every `:name` replaced by `CAST($n AS <type>)`. */
  sql: string;
  /** Parameter names in `$n` order (first use in the text). */
  params: string[];
  /** Tables written (INSERT, UPDATE, DELETE, MERGE; in a WITH too): the tool then takes reason and dry_run. */
  writes: Array<{ schema?: string; name: string; op: 'insert' | 'update' | 'delete' }>;
}

/** A domain tool whose statement does not compile; the message names the tool. */
export class DomainToolError extends Error {
  constructor(
    readonly tool: string,
    detail: string,
  ) {
    super(`tool ${tool}: ${detail}`);
    this.name = 'DomainToolError';
  }
}

/** The tool's wire name (dots → `_`), as src/tools/names.ts makes it. */
export function domainWireName(name: string): string {
  return name.replace('.', '_');
}

/** What is wrong with the declarations that needs no parser: names, clashes, reserved parameters. */
export function domainToolProblems(tools: readonly DomainToolDecl[]): string[] {
  const problems: string[] = [];
  const wires = new Map<string, string>();
  tools.forEach((tool, i) => {
    const at = `tools[${i}] ${tool.name}`;
    const namespace = tool.name.slice(0, tool.name.indexOf('.'));
    const wire = domainWireName(tool.name);
    if (RESERVED_NAMESPACES.some((r) => namespace === r || namespace.startsWith(`${r}_`))) {
      problems.push(`${at}: the namespaces ${RESERVED_NAMESPACES.join(', ')} (and names starting with them and _) are the proxy's own tools`);
    }
    if (wire.length > MAX_WIRE_NAME) problems.push(`${at}: the name is longer than ${MAX_WIRE_NAME} characters`);
    const clash = wires.get(wire);
    if (clash === tool.name) problems.push(`${at}: declared twice`);
    else if (clash !== undefined) problems.push(`${at}: ${clash} has the same name without its dot (${wire}), which model APIs see`);
    else wires.set(wire, tool.name);
    for (const param of Object.keys(tool.params)) {
      if (RESERVED_PARAMS.includes(param)) problems.push(`${at}: the parameter name "${param}" is reserved (${RESERVED_PARAMS.join(', ')})`);
    }
  });
  return problems;
}

/** A name that can follow `:` as a parameter: an identifier or a keyword, unquoted. */
const NAME_LIKE = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** A token directly before `:` that makes it an array slice (`a[1:n]`, `a[lo:hi]`, `a[:hi]`), not a parameter. */
const SLICE_BEFORE = /[A-Za-z0-9_"'\])[$]$/;
/** The scanner's JSON output breaks on raw control characters; outside literals they are not valid SQL anyway (see scanComments). */
const CONTROL_ALL = /[\x01-\x08\x0b\x0c\x0e-\x1f]/g;
/** MERGE may do all three; it counts as a write here (it takes a reason), and the pipeline judges it. */
const WRITE_NODES: Record<string, 'insert' | 'update' | 'delete'> = { InsertStmt: 'insert', UpdateStmt: 'update', DeleteStmt: 'delete', MergeStmt: 'update' };

const compiled = new WeakMap<DomainToolDecl, DomainToolTemplate | DomainToolError>();

/**
 * The tool's statement with its parameters as `$n`, once per declaration. Requires the parser
 * (initAnalysis). Throws DomainToolError: the text does not scan or parse, is not exactly one
 * statement, uses `$n` itself, or uses a parameter it does not declare (or declares one it does not use).
 */
export function domainToolTemplate(decl: DomainToolDecl): DomainToolTemplate {
  let result = compiled.get(decl);
  if (result === undefined) {
    try {
      result = compile(decl);
    } catch (err) {
      if (!(err instanceof DomainToolError)) throw err;
      result = err;
    }
    compiled.set(decl, result);
  }
  if (result instanceof DomainToolError) throw result;
  return result;
}

function compile(decl: DomainToolDecl): DomainToolTemplate {
  const fail = (detail: string) => new DomainToolError(decl.name, detail);
  let tokens;
  try {
    tokens = scanTokens(decl.sql.replace(CONTROL_ALL, ' ')).tokens;
  } catch (err) {
    // The parser not loaded (a programming error) is thrown as it is: only the text's own faults are the tool's, and kept.
    if (!(err instanceof GrammarError) && !(err instanceof ProxyError)) throw err;
    throw fail(`the sql does not scan: ${err.message}`);
  }
  const bytes = Buffer.from(decl.sql, 'utf8');
  const params: string[] = [];
  const undeclared = new Set<string>();
  const pieces: Buffer[] = [];
  let copied = 0;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.tokenName === 'PARAM') throw fail(`the sql uses ${token.text}: write parameters as :name and declare them under params`);
    if (token.text !== ':') continue;
    const next = tokens[i + 1];
    const prev = tokens[i - 1];
    if (!next || next.start !== token.end || !NAME_LIKE.test(next.text)) continue;
    if (prev && prev.end === token.start && SLICE_BEFORE.test(prev.text)) continue;
    const name = next.text;
    const param = decl.params[name];
    if (!param) {
      undeclared.add(name);
      continue;
    }
    if (!params.includes(name)) params.push(name);
    // Token positions are byte offsets into the UTF-8 text.
    pieces.push(bytes.subarray(copied, token.start), Buffer.from(`CAST($${params.indexOf(name) + 1} AS ${PARAM_SQL_TYPES[param.type]})`));
    copied = next.end;
    i++;
  }
  if (undeclared.size > 0) {
    throw fail(`the sql uses ${[...undeclared].map((n) => `:${n}`).join(', ')}, not declared under params (names are lower case; a colon right after a name, a number or a bracket is an array slice)`);
  }
  const unused = Object.keys(decl.params).filter((p) => !params.includes(p));
  if (unused.length > 0) throw fail(`params declares ${unused.join(', ')}, which the sql does not use (as :${unused[0]})`);
  pieces.push(bytes.subarray(copied));
  const sql = Buffer.concat(pieces).toString('utf8');
  let statements: Node[];
  try {
    statements = parseStatements(sql);
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    throw fail(`the sql does not parse: ${err.message}`);
  }
  if (statements.length !== 1) throw fail(statements.length === 0 ? 'the sql holds no statement' : `the sql holds ${statements.length} statements; a tool runs one`);
  return { decl, sql, params, writes: writeTargets(statements[0]) };
}

/** Every table the statement writes, top-level and in data-modifying WITH queries. */
function writeTargets(node: Node): DomainToolTemplate['writes'] {
  const out: DomainToolTemplate['writes'] = [];
  const stack: unknown[] = [node];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const op = WRITE_NODES[key];
      if (op) {
        const relation = (child as { relation?: { schemaname?: string; relname?: string } } | null)?.relation;
        if (relation?.relname) out.push({ ...(relation.schemaname ? { schema: relation.schemaname } : {}), name: relation.relname, op });
      }
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return out;
}
