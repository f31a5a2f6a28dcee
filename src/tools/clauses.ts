// Pieces of a compiled tool call: models and fields resolved against the principal's scope, values as $n parameters, where / order_by / key conditions.
//
// Names are checked against the scope's visible columns (ScopedTable.columns: the policy's own
// compiled view, denied columns already removed), then quoted. A denied field is therefore
// exactly as absent as a field that does not exist — the same 42703 the SQL path gives — and
// error messages list only visible fields. Everything else the policy decides (masks in
// conditions of writes, writable fields, grants, reasons, the tenant) is left to the pipeline
// that runs the compiled statement.
import { ProxyError } from '../errors/catalogue';
import { quoteIdent } from '../analysis/rewrite/nodes';
import type { ReadScope, ScopedTable, VisibleColumn } from '../policy/scope';
import { LIMITS, OPERATORS, invalidArguments, type Operator, type ToolName } from './arguments';

/** The flag raised when an argument named the tenant column: it was dropped (the pipeline sets the principal's tenant). */
export const TENANT_ARGUMENT_IGNORED = 'tenant_argument_ignored';
/** What the redacted arguments show for a value that was dropped rather than sent. */
export const IGNORED = '(ignored: tenant column)';

/** Collects parameter values; each value's placeholder is also what the redacted arguments show. */
export class Params {
  readonly values: Array<string | null> = [];

  constructor(private readonly tool: ToolName) {}

  add(value: string | null): string {
    // A Bind message counts its parameters in 16 bits (at most 65535); long before that, one call is too big.
    if (this.values.length >= LIMITS.params) throw invalidArguments(this.tool, [`more than ${LIMITS.params} values in one call: split it into several calls`]);
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** What a compile step accumulates besides SQL: the flags for the audit event. */
export interface CompileState {
  tool: ToolName;
  scope: ReadScope;
  params: Params;
  flags: Set<string>;
}

const short = (name: string) => JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);

/** `"schema"."table"` of a model. */
export function tableSql(table: ScopedTable): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

/**
 * The model by its policy name (models[].name), else by table name or `schema.table`; an
 * unknown name is model_not_allowed, as on the SQL path, with the models the agent can use.
 */
export function resolveModel(scope: ReadScope, name: string): ScopedTable {
  const tables = [...scope.tables.values()];
  const lower = name.toLowerCase();
  const found =
    tables.find((t) => t.model === name) ??
    unique(tables.filter((t) => t.model.toLowerCase() === lower)) ??
    unique(tables.filter((t) => t.name === lower || `${t.schema}.${t.name}` === lower));
  if (found) return found;
  throw new ProxyError('model_not_allowed', {
    message: `model ${short(name)} does not exist`,
    hint: `Use one of the models: ${tables.map((t) => t.model).join(', ')}. db.describe_schema lists their fields.`,
  });
}

function unique<T>(list: T[]): T | undefined {
  return list.length === 1 ? list[0] : undefined;
}

/**
 * The visible column a field names: exactly, else folded to lower case as PostgreSQL folds an
 * unquoted identifier (ASCII letters only, scan.l downcase_identifier).
 */
export function resolveField(table: ScopedTable, name: string): VisibleColumn {
  const column = table.columns.find((c) => c.name === name) ?? table.columns.find((c) => c.name === name.replace(/[A-Z]/g, (ch) => ch.toLowerCase()));
  if (column) return column;
  const suffix = /^(.+)__([a-z_]+)$/.exec(name);
  const operator = suffix && (OPERATORS as readonly string[]).includes(suffix[2]) ? suffix : undefined;
  throw new ProxyError('column_not_found', {
    message: `field ${short(name)} does not exist on model ${table.model}`,
    hint:
      (operator ? `Operators are objects: {"${operator[1].slice(0, 64)}": {"${operator[2]}": …}}. ` : '') +
      `Fields of ${table.model}: ${table.columns.map((c) => c.name).join(', ')}.`,
  });
}

export function isTenant(table: ScopedTable, column: string): boolean {
  return table.tenantColumn !== undefined && table.tenantColumn === column;
}

/** A scalar as parameter text: PostgreSQL infers the type from where the parameter stands. */
export function scalarText(value: string | number | boolean): string {
  return typeof value === 'string' ? value : String(value);
}

// ---- where ----

type Scalar = string | number | boolean;
type Condition = Scalar | null | Partial<Record<Operator, Scalar | Scalar[] | null | boolean>>;

const COMPARE: Partial<Record<Operator, string>> = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=', like: 'LIKE', ilike: 'ILIKE' };

/**
 * The where filter as ANDed SQL conditions, and its redacted form (values replaced by their
 * placeholders, fields and operators kept). The tenant column is dropped and flagged.
 */
export function whereSql(state: CompileState, table: ScopedTable, where: Record<string, Condition>): { conditions: string[]; redacted: Record<string, unknown> } {
  const conditions: string[] = [];
  const redacted: Record<string, unknown> = {};
  for (const [field, condition] of Object.entries(where)) {
    const column = resolveField(table, field);
    if (isTenant(table, column.name)) {
      state.flags.add(TENANT_ARGUMENT_IGNORED);
      redacted[field] = IGNORED;
      continue;
    }
    const ref = quoteIdent(column.name);
    if (condition === null || typeof condition !== 'object') {
      const [sql, shown] = compare(state, ref, 'eq', condition);
      conditions.push(sql);
      redacted[field] = shown;
      continue;
    }
    const shown: Record<string, unknown> = {};
    for (const [op, value] of Object.entries(condition) as Array<[Operator, Scalar | Scalar[] | null | boolean]>) {
      if (value === undefined) continue;
      const [sql, v] = compare(state, ref, op, value);
      conditions.push(sql);
      shown[op] = v;
    }
    redacted[field] = shown;
  }
  return { conditions, redacted };
}

function compare(state: CompileState, ref: string, op: Operator, value: Scalar | Scalar[] | null | boolean): [string, unknown] {
  switch (op) {
    case 'is_null':
      return [`${ref} IS ${value ? '' : 'NOT '}NULL`, value];
    case 'in':
    case 'not_in': {
      // One parameter per element: each is typed from the column like any other comparison, and
      // PostgreSQL turns `IN (…)` into `= ANY (ARRAY[…])` itself. The list is bounded (LIMITS).
      const placeholders = (value as Scalar[]).map((v) => state.params.add(scalarText(v)));
      return [`${ref} ${op === 'in' ? 'IN' : 'NOT IN'} (${placeholders.join(', ')})`, placeholders];
    }
    default:
      if (value === null) return [`${ref} IS ${op === 'ne' ? 'NOT ' : ''}NULL`, null];
      {
        const placeholder = state.params.add(scalarText(value as Scalar));
        return [`${ref} ${COMPARE[op]} ${placeholder}`, placeholder];
      }
  }
}

// ---- order_by ----

export type OrderItem = string | { field: string; direction?: 'asc' | 'desc' };

/** `-field` → field descending; `{field, direction}` as given. */
export function orderTerms(orderBy: OrderItem | OrderItem[] | undefined): Array<{ name: string; desc: boolean }> {
  if (orderBy === undefined) return [];
  return (Array.isArray(orderBy) ? orderBy : [orderBy]).map((item) =>
    typeof item === 'string' ? (item.startsWith('-') ? { name: item.slice(1), desc: true } : { name: item, desc: false }) : { name: item.field, desc: item.direction === 'desc' },
  );
}

export function orderSql(terms: Array<{ sql: string; desc: boolean }>): string {
  return terms.length === 0 ? '' : ` ORDER BY ${terms.map((t) => `${t.sql}${t.desc ? ' DESC' : ''}`).join(', ')}`;
}

// ---- keys (db.get, and id in db.update / db.delete) ----

/**
 * `pk = $n` conditions for an id: a scalar for a one-column key, {field: value} for a composite
 * one. A tenant column in the key is the pipeline's to match: given in an id object, it is
 * dropped and flagged; it is never needed.
 */
export function keySql(state: CompileState, table: ScopedTable, id: Scalar | Record<string, Scalar>): { conditions: string[]; redacted: unknown } {
  const key = (table.primaryKey ?? []).filter((k) => !isTenant(table, k));
  if (key.length === 0) {
    throw invalidArguments(state.tool, [`model ${table.model} has no primary key you can use`], `Find the rows with a where filter instead of id (db.query, or where in db.update / db.delete).`);
  }
  if (typeof id !== 'object') {
    if (key.length > 1) throw invalidArguments(state.tool, [`id: the primary key of ${table.model} has several fields (${key.join(', ')}): give {${key.map((k) => `"${k}": …`).join(', ')}}`]);
    const placeholder = state.params.add(scalarText(id));
    return { conditions: [`${quoteIdent(key[0])} = ${placeholder}`], redacted: placeholder };
  }
  const redacted: Record<string, unknown> = {};
  const given = new Map<string, [string, Scalar]>();
  for (const [field, value] of Object.entries(id)) {
    const column = resolveField(table, field);
    if (isTenant(table, column.name)) {
      state.flags.add(TENANT_ARGUMENT_IGNORED);
      redacted[field] = IGNORED;
      continue;
    }
    if (!key.includes(column.name)) throw invalidArguments(state.tool, [`id.${field}: not a primary key field of ${table.model} (key: ${key.join(', ')})`]);
    given.set(column.name, [field, value]);
  }
  const missing = key.filter((k) => !given.has(k));
  if (missing.length > 0) throw invalidArguments(state.tool, [`id: missing ${missing.join(', ')} (the primary key of ${table.model} is ${key.join(', ')})`]);
  const conditions = key.map((k) => {
    const [field, value] = given.get(k)!;
    const placeholder = state.params.add(scalarText(value));
    redacted[field] = placeholder;
    return `${quoteIdent(k)} = ${placeholder}`;
  });
  return { conditions, redacted };
}

// ---- data (db.create, db.update) ----

const JSON_TYPES = new Set(['json', 'jsonb']);

/**
 * A value to write, as parameter text for the column: scalars as text, null as NULL, JSON
 * objects and arrays as JSON text for json/jsonb columns, arrays as array literals for array
 * columns. Anything else does not fit the column.
 */
export function dataText(state: CompileState, table: ScopedTable, column: VisibleColumn, field: string, value: unknown): string | null {
  if (value === null) return null;
  if (typeof value === 'string') {
    if (value.includes('\0')) throw invalidArguments(state.tool, [`data.${field}: text cannot contain a zero byte (\\u0000)`]);
    return value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') {
    if (depth(value) > LIMITS.jsonDepth) throw invalidArguments(state.tool, [`data.${field}: nested deeper than ${LIMITS.jsonDepth} levels`]);
    if (JSON_TYPES.has(column.type)) return JSON.stringify(value);
    if (Array.isArray(value) && column.type.endsWith('[]')) return arrayLiteral(state, field, value);
  }
  throw invalidArguments(state.tool, [`data.${field}: ${table.model}.${column.name} is ${column.type}: give a string, number, boolean or null`]);
}

function depth(value: unknown): number {
  // Iterative: a hostile value may be nested far deeper than the call stack allows.
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) max = d;
    if (max > LIMITS.jsonDepth) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * PostgreSQL's array input syntax (arrays.sgml "Array Value Input"): every element
 * double-quoted with `"` and `\` backslash-escaped, NULL unquoted, nested arrays as nested braces.
 * It is a parameter value, never SQL text: a wrong literal can only fail to parse.
 */
function arrayLiteral(state: CompileState, field: string, items: unknown[]): string {
  const element = (v: unknown): string => {
    if (v === null) return 'NULL';
    if (Array.isArray(v)) return `{${v.map(element).join(',')}}`;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      const s = String(v);
      if (s.includes('\0')) throw invalidArguments(state.tool, [`data.${field}: text cannot contain a zero byte (\\u0000)`]);
      return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    }
    throw invalidArguments(state.tool, [`data.${field}: array elements must be strings, numbers, booleans, null or arrays`]);
  };
  return element(items);
}
