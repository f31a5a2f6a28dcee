// Compiles a db.* tool call into one SQL statement with $n parameters, for an ordinary proxy session of the principal (docs/tools.md).
//
// The statement is the agent's request and nothing more: the session's pipeline adds the
// tenant, the masks, the row cap and every write rule, exactly as for SQL from the wire. What
// is decided here is only what SQL text cannot carry safely on its own: every identifier is
// checked against the scope and quoted, every value is a parameter, reason and dry_run are
// sqlcommenter tags encoded so that no value can leave its quotes or the comment.
import type { Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { statementName } from '../analysis/labels';
import { parseStatements } from '../analysis/parser';
import { quoteIdent } from '../analysis/rewrite/nodes';
import { nodeBody, nodeTypeOf } from '../analysis/types';
import { redactSql } from '../audit/redact';
import type { PolicySnapshot } from '../policy/load';
import type { ReadScope, ScopedTable } from '../policy/scope';
import { invalidArguments, isToolName, parseToolArguments, SQL_TOOLS, TOOL_NAMES, type SqlToolName, type ToolArguments, type ToolName } from './arguments';
import { dataText, IGNORED, isTenant, keySql, orderSql, orderTerms, Params, resolveField, resolveModel, scalarText, tableSql, TENANT_ARGUMENT_IGNORED, whereSql, type CompileState } from './clauses';
import { compileDomainCall, domainToolOf, toolNamesOf } from './domain';
import { canonicalToolName } from './names';
import { REASON_SHOWN } from './redact';
import { writeTags } from './tags';
import type { CompiledCall, ToolCall } from './types';

export interface CompileContext {
  /** The principal's policy compiled against the catalog (PolicyView.scope): models, visible columns, keys, tenant column. */
  scope: ReadScope;
}

/**
 * The statement a db.query / get / aggregate / create / update / delete / sql call, or a call of
 * one of the policy's domain tools (domain.ts), runs as. Throws ProxyError: tool_unknown,
 * tool_arguments_invalid, model_not_allowed, column_not_found, and for db.sql the parser's and
 * statement_not_allowed.
 */
export function compileCall(call: ToolCall, ctx: CompileContext): CompiledCall {
  const { policy } = ctx.scope;
  const tool = canonicalToolName(call.name, toolNamesOf(policy));
  const domain = tool !== undefined && !isToolName(tool) ? domainToolOf(policy, tool) : undefined;
  if (domain) return compileDomainCall(domain, call.arguments);
  if (tool === undefined || !isToolName(tool)) throw unknownTool(call.name, policy);
  if (!isSqlTool(tool)) throw new Error(`${tool} is not compiled to SQL: the engine answers it`);
  const state: CompileState = { tool, scope: ctx.scope, params: new Params(tool), flags: new Set() };
  const compiled = COMPILERS[tool](state, call.arguments);
  return { ...compiled, params: state.params.values, flags: [...state.flags] };
}

export function isSqlTool(name: ToolName): name is SqlToolName {
  return (SQL_TOOLS as readonly string[]).includes(name);
}

/** `policy`: its domain tools are listed in the hint too. */
export function unknownTool(name: string, policy?: PolicySnapshot): ProxyError {
  const names = policy ? toolNamesOf(policy) : TOOL_NAMES;
  return new ProxyError('tool_unknown', {
    message: `there is no tool ${JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)}`,
    hint: `Call one of: ${names.join(', ')} (the write tools only where your policy enables them; tools/list shows yours).`,
  });
}

type Compiled = Omit<CompiledCall, 'params' | 'flags'>;
type Compiler = (state: CompileState, args: unknown) => Compiled;

const COMPILERS: Record<SqlToolName, Compiler> = {
  'db.query': (state, raw) => {
    const args = parseToolArguments('db.query', raw);
    const table = resolveModel(state.scope, args.model);
    const cols = selectList(table, args.select);
    const where = args.where ? whereSql(state, table, args.where) : undefined;
    const order = orderTerms(args.order_by).map((t) => ({ sql: quoteIdent(resolveField(table, t.name).name), desc: t.desc }));
    const limit = args.limit !== undefined ? state.params.add(String(args.limit)) : undefined;
    const offset = args.offset !== undefined ? state.params.add(String(args.offset)) : undefined;
    const sql = `SELECT ${cols} FROM ${tableSql(table)}${whereText(where?.conditions)}${orderSql(order)}${limit ? ` LIMIT ${limit}` : ''}${offset ? ` OFFSET ${offset}` : ''}`;
    return { sql, shape: 'rows', redactedArguments: redacted(raw, { where: where?.redacted, limit, offset }) };
  },

  'db.get': (state, raw) => {
    const args = parseToolArguments('db.get', raw);
    const table = resolveModel(state.scope, args.model);
    const key = keySql(state, table, args.id);
    return {
      sql: `SELECT ${selectList(table, args.select)} FROM ${tableSql(table)}${whereText(key.conditions)}`,
      shape: 'one',
      redactedArguments: redacted(raw, { id: key.redacted }),
    };
  },

  'db.aggregate': (state, raw) => {
    const args = parseToolArguments('db.aggregate', raw);
    const table = resolveModel(state.scope, args.model);
    return aggregate(state, table, args, raw);
  },

  'db.create': (state, raw) => {
    const args = parseToolArguments('db.create', raw);
    const table = resolveModel(state.scope, args.model);
    const { columns, values, shown } = assignments(state, table, args.data);
    if (columns.length === 0) throw invalidArguments(state.tool, [`data names only the tenant column, which the proxy sets: give the fields of the new ${table.model} row`]);
    const sql = `INSERT INTO ${tableSql(table)} (${columns.join(', ')}) VALUES (${values.join(', ')}) RETURNING *`;
    return write(args, sql, redacted(raw, { data: shown, reason: REASON_SHOWN }));
  },

  'db.update': (state, raw) => {
    const args = parseToolArguments('db.update', raw);
    const table = resolveModel(state.scope, args.model);
    const { columns, values, shown } = assignments(state, table, args.data);
    if (columns.length === 0) throw invalidArguments(state.tool, ['data names only the tenant column, which never changes: give the fields to change']);
    const target = writeTarget(state, table, args);
    const set = columns.map((c, i) => `${c} = ${values[i]}`).join(', ');
    const sql = `UPDATE ${tableSql(table)} SET ${set}${whereText(target.conditions)} RETURNING *`;
    return write(args, sql, redacted(raw, { data: shown, ...target.shown, reason: REASON_SHOWN }));
  },

  'db.delete': (state, raw) => {
    const args = parseToolArguments('db.delete', raw);
    const table = resolveModel(state.scope, args.model);
    const target = writeTarget(state, table, args);
    const sql = `DELETE FROM ${tableSql(table)}${whereText(target.conditions)} RETURNING *`;
    return write(args, sql, redacted(raw, { ...target.shown, reason: REASON_SHOWN }));
  },

  'db.sql': (state, raw) => {
    const args = parseToolArguments('db.sql', raw);
    checkRead(args.sql);
    const placeholders = (args.params ?? []).map((p) => state.params.add(p === null ? null : scalarText(p)));
    return {
      sql: args.sql,
      shape: 'rows',
      // The text as the audit keeps SQL: literals replaced by placeholders, comments dropped.
      redactedArguments: { sql: redactSql(args.sql, true), ...(args.params ? { params: placeholders } : {}) },
    };
  },
};

// ---- reads ----

function selectList(table: ScopedTable, select: string[] | undefined): string {
  if (!select) return '*';
  return [...new Set(select.map((f) => quoteIdent(resolveField(table, f).name)))].join(', ');
}

function whereText(conditions: string[] | undefined): string {
  return conditions && conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '';
}

function aggregate(state: CompileState, table: ScopedTable, args: ToolArguments['db.aggregate'], raw: unknown): Compiled {
  const groups = [...new Set((args.group_by ?? []).map((f) => resolveField(table, f).name))];
  const aggregates = (args.aggregates ?? [{ fn: 'count' as const }]).map((a) => {
    const column = a.field === undefined ? undefined : resolveField(table, a.field).name;
    return { name: column === undefined ? a.fn : `${a.fn}_${column}`, sql: `${a.fn}(${column === undefined ? '*' : quoteIdent(column)})` };
  });
  // Result columns are named; two with one name would make one of them unreadable as a row object.
  const names = [...groups, ...aggregates.map((a) => a.name)];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw invalidArguments(state.tool, [`two result columns would both be named "${twice}": list each group_by field and aggregate once`]);
  const where = args.where ? whereSql(state, table, args.where) : undefined;
  const order = orderTerms(args.order_by).map((t) => {
    const agg = aggregates.find((a) => a.name === t.name);
    if (agg) return { sql: agg.sql, desc: t.desc };
    const folded = t.name.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
    const group = groups.find((g) => g === t.name) ?? groups.find((g) => g === folded);
    if (group === undefined) throw invalidArguments(state.tool, [`order_by: "${t.name.slice(0, 64)}" is not a group_by field or an aggregate (sort by one of: ${names.join(', ')})`]);
    return { sql: quoteIdent(group), desc: t.desc };
  });
  const limit = args.limit !== undefined ? state.params.add(String(args.limit)) : undefined;
  const list = [...groups.map(quoteIdent), ...aggregates.map((a) => `${a.sql} AS ${quoteIdent(a.name)}`)].join(', ');
  const groupBy = groups.length > 0 ? ` GROUP BY ${groups.map(quoteIdent).join(', ')}` : '';
  const sql = `SELECT ${list} FROM ${tableSql(table)}${whereText(where?.conditions)}${groupBy}${orderSql(order)}${limit ? ` LIMIT ${limit}` : ''}`;
  return { sql, shape: 'rows', redactedArguments: redacted(raw, { where: where?.redacted, limit }) };
}

// ---- writes ----

function assignments(state: CompileState, table: ScopedTable, data: Record<string, unknown>): { columns: string[]; values: string[]; shown: Record<string, unknown> } {
  const columns: string[] = [];
  const values: string[] = [];
  const shown: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const [field, value] of Object.entries(data)) {
    const column = resolveField(table, field);
    if (isTenant(table, column.name)) {
      state.flags.add(TENANT_ARGUMENT_IGNORED);
      shown[field] = IGNORED;
      continue;
    }
    if (seen.has(column.name)) throw invalidArguments(state.tool, [`data names ${column.name} twice`]);
    seen.add(column.name);
    const placeholder = state.params.add(dataText(state, table, column, field, value));
    columns.push(quoteIdent(column.name));
    values.push(placeholder);
    shown[field] = placeholder;
  }
  return { columns, values, shown };
}

/** The rows an update or delete targets: by key or by filter, never every row. */
function writeTarget(state: CompileState, table: ScopedTable, args: { id?: ToolArguments['db.get']['id']; where?: ToolArguments['db.query']['where'] }): { conditions: string[]; shown: Record<string, unknown> } {
  if (args.id !== undefined) {
    const key = keySql(state, table, args.id);
    return { conditions: key.conditions, shown: { id: key.redacted } };
  }
  const where = whereSql(state, table, args.where ?? {});
  if (where.conditions.length === 0) {
    throw invalidArguments(
      state.tool,
      [`where has no condition${state.flags.has(TENANT_ARGUMENT_IGNORED) ? ' besides the tenant column, which the proxy sets' : ''}: a tool never changes every row of ${table.model}`],
      `Give the id of the row, or a where filter on its fields (db.describe_schema lists them); preview with dry_run: true.`,
    );
  }
  return { conditions: where.conditions, shown: { where: where.redacted } };
}

function write(args: { reason?: string; dry_run?: boolean }, sql: string, shown: unknown): Compiled {
  return { sql: `${writeTags(args)}${sql}`, shape: 'write', redactedArguments: shown, ...(args.dry_run ? { dryRun: true } : {}) };
}

// ---- db.sql ----

const WRITES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * db.sql is for reads: one SELECT (or EXPLAIN of one) with no data-modifying statement inside
 * (a WITH … DELETE). Anything else the pipeline would judge as a write or a session command, so
 * it is refused here; everything about the read itself is the pipeline's to decide.
 */
function checkRead(sql: string): void {
  const statements = parseStatements(sql);
  const refuse = (what: string) =>
    new ProxyError('statement_not_allowed', {
      message: `db.sql runs one read (SELECT); ${what}`,
      hint: 'Send a single SELECT. Change data with db.create, db.update or db.delete, which take a reason and support dry_run.',
    });
  if (statements.length !== 1) throw refuse(statements.length === 0 ? 'the text holds no statement' : 'the text holds several statements');
  let node: Node = statements[0];
  if (nodeTypeOf(node) === 'ExplainStmt') node = nodeBody<{ query?: Node }>(node).query ?? node;
  if (nodeTypeOf(node) !== 'SelectStmt') throw refuse(`${statementName(nodeTypeOf(node), nodeBody(node))} is not one`);
  const stack: unknown[] = [node];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      if (WRITES.has(key)) throw refuse('it holds a data-modifying statement');
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
}

// ---- redacted arguments ----

/**
 * The call's arguments as the audit keeps them: structure and names as the agent sent them,
 * every value that became a parameter replaced by its placeholder. `replaced` holds the
 * redacted form of each argument that carries values; the rest (model, select, order_by,
 * group_by, aggregates, dry_run) carry names only and are kept.
 */
function redacted(raw: unknown, replaced: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [key, value] of Object.entries(replaced)) {
    if (value === undefined || !(key in out)) continue;
    out[key] = value;
  }
  return out;
}
