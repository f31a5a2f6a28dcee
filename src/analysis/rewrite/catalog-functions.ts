// The catalog helper functions and reg* casts, answered only for what the policy makes visible: each object argument is passed through the policy view of its catalog, so a hidden object reads as NULL.
//
// `pg_get_indexdef(x)` becomes `pg_get_indexdef((SELECT ormai_g.indexrelid FROM pg_catalog.pg_index
// ormai_g WHERE ormai_g.indexrelid = x LIMIT 1))`: the inner pg_catalog.pg_index is then replaced by
// its policy view like any relation the agent names (catalog-views.ts), so an index on a hidden
// column, or any object of a hidden table, gives the function NULL, and these functions return
// NULL for NULL. The agent's argument is evaluated as written; only its answer is filtered.
//
// Casts to regclass, regtype, regnamespace, regproc and regprocedure work the same way for
// expressions. A string constant is checked here instead: a relation name must be one the agent
// may name in FROM (or a system catalog), a type name one of the built-in types, a schema a
// visible one, a function name is looked up in pg_catalog only.
import type { A_Const, FuncCall, Node, TypeCast } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope } from '../../policy/scope';
import { CATALOG_FUNCTIONS } from '../function-allowlist';
import { checkTypeName } from '../functions';
import { parseStatements } from '../parser';
import { figure } from '../range-entries';
import { nodeBody, nodeTypeOf } from '../types';
import { cloneTree, parseTemplate, walk } from './nodes';
import { modelNotAllowed } from './refusals';
import { nameLiteral } from './virtual';

/** The catalog and column an object argument is looked up in, and the to_reg* function for its name. */
interface Lookup {
  catalog: string;
  column: string;
  byName?: string;
}

const CLASS: Lookup = { catalog: 'pg_class', column: 'oid', byName: 'to_regclass' };
const TYPE: Lookup = { catalog: 'pg_type', column: 'oid', byName: 'to_regtype' };
const PROC: Lookup = { catalog: 'pg_proc', column: 'oid', byName: 'to_regprocedure' };
const NAMESPACE: Lookup = { catalog: 'pg_namespace', column: 'oid', byName: 'to_regnamespace' };

/** Helper functions whose first argument names an object, and where that object is looked up. */
const OBJECT_ARGUMENT: Record<string, Lookup> = {
  format_type: TYPE,
  pg_type_is_visible: TYPE,
  pg_get_indexdef: { catalog: 'pg_index', column: 'indexrelid' },
  pg_get_constraintdef: { catalog: 'pg_constraint', column: 'oid' },
  pg_get_triggerdef: { catalog: 'pg_trigger', column: 'oid' },
  pg_get_statisticsobjdef_columns: { catalog: 'pg_statistic_ext', column: 'oid' },
  pg_table_is_visible: CLASS,
  pg_relation_is_publishable: CLASS,
  pg_partition_ancestors: CLASS,
  pg_function_is_visible: PROC,
  pg_get_function_arguments: PROC,
  pg_get_function_result: PROC,
  pg_get_function_identity_arguments: PROC,
};

/** has_*_privilege(object, privilege): the two-argument form, about the proxy's own role. */
const PRIVILEGE: Record<string, Lookup> = {
  has_table_privilege: CLASS,
  has_any_column_privilege: CLASS,
  has_sequence_privilege: CLASS,
  has_schema_privilege: NAMESPACE,
  has_function_privilege: PROC,
  has_type_privilege: TYPE,
  has_database_privilege: { catalog: 'pg_database', column: 'oid' },
};

/** The reg* types a cast may name when the read rewrite runs, and the catalog each looks up. */
const REG_CASTS: Record<string, Lookup> = {
  regclass: CLASS,
  regtype: TYPE,
  regnamespace: NAMESPACE,
  regproc: { ...PROC, byName: 'to_regproc' },
  regprocedure: PROC,
};


const templates = new Map<string, Node>();

/** A template expression with the agent's nodes put in for ormai_arg0, ormai_arg1, … (each use gets its own copy). */
function fill(sql: string, args: readonly Node[]): Node {
  let template = templates.get(sql);
  if (!template) {
    const target = parseTemplate(`SELECT ${sql}`, 'catalog function').targetList?.[0] as { ResTarget: { val: Node } };
    template = target.ResTarget.val;
    templates.set(sql, template);
  }
  const out = cloneTree(template);
  walk([out], (node) => {
    const ref = node.ColumnRef as { fields?: Node[] } | undefined;
    const name = ref?.fields?.length === 1 && 'String' in ref.fields[0] ? ref.fields[0].String.sval : undefined;
    const m = name ? /^ormai_arg(\d)$/.exec(name) : null;
    if (!m) return;
    delete node.ColumnRef;
    Object.assign(node, cloneTree(args[Number(m[1])]));
  });
  return out;
}

/**
 * `<arg i>` when `condition` holds, else NULL. The agent's arguments are evaluated in a sub-select
 * of their own, `(SELECT <arg0> AS ormai_v0, …) ormai_a`, outside every FROM the guard adds: an
 * unqualified name in them (`conbin`, `oid`) still means the agent's column, never the catalog
 * row the condition looks at. The condition reads them as ormai_a.ormai_v0, …
 */
function guarded(args: readonly Node[], value: string, condition: string): Node {
  const list = args.map((_, i) => `ormai_arg${i} AS ormai_v${i}`).join(', ');
  return fill(`(SELECT ${value} FROM (SELECT ${list}) ormai_a WHERE ${condition} LIMIT 1)`, args);
}

/** The first argument as an oid (an untyped constant such as psql's '16384' reads as one). */
const AS_OID = 'CAST(ormai_a.ormai_v0 AS pg_catalog.oid)';

/**
 * The object argument when the policy's catalog shows it, by oid or by name (then its oid). A
 * relation name may start with the database the agent connected to (`app.public.t`, as TypeORM
 * writes it), which PostgreSQL accepts for its own database: that part is dropped, since the
 * upstream database has another name; a name of three parts left after that gives NULL.
 */
function visibleObject(lookup: Lookup, arg: Node, textual: boolean, database?: string): Node {
  let name = 'CAST(ormai_a.ormai_v0 AS text)';
  if (lookup === CLASS && database) {
    const re = database.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const forms = /^[a-z_][a-z0-9_$]*$/.test(database) ? `"${re}"|${re}` : `"${re.replace(/"/g, '""')}"`;
    name = `pg_catalog.regexp_replace(${name}, '^(?:${forms.replace(/'/g, "''")})\\.(?=.+\\..+)', '')`;
  }
  if (lookup === CLASS) {
    // Any other database's name stays: PostgreSQL would refuse it as a cross-database reference
    // unless it is the upstream database's, whose name is not the agent's to learn. No lookup.
    name = `CASE WHEN ${name} ~ '^(?:"(?:[^"]|"")*"|[^".])*\\.(?:"(?:[^"]|"")*"|[^".])*\\.' THEN NULL ELSE ${name} END`;
  }
  if (textual && lookup.byName) {
    // A type modifier makes to_regtype and to_regprocedure raise an error for a type that has
    // none, and only for a type that exists, hidden or not: a type's is dropped, and a function
    // signature with one looks nothing up.
    if (lookup.byName === 'to_regtype') name = `pg_catalog.regexp_replace(${name}, '\\([^()]*\\)', '', 'g')`;
    if (lookup.byName === 'to_regprocedure') name = `CASE WHEN ${name} ~ '\\([^()]*\\(' THEN NULL ELSE ${name} END`;
    return fill(`(SELECT ormai_g.${lookup.column} FROM (SELECT ormai_arg0 AS ormai_v0) ormai_a, pg_catalog.${lookup.catalog} ormai_g WHERE ormai_g.${lookup.column} = pg_catalog.${lookup.byName}(${name}) LIMIT 1)`, [arg]);
  }
  return guarded([arg], AS_OID, `EXISTS (SELECT 1 FROM pg_catalog.${lookup.catalog} ormai_g WHERE ormai_g.${lookup.column} = ${AS_OID})`);
}

const TEXT_FUNCTIONS = new Set(['quote_ident', 'format_type', 'current_schema', 'concat', 'concat_ws', 'format', 'lower', 'upper', 'btrim', 'ltrim', 'rtrim', 'replace', 'substr', 'substring', 'pg_get_serial_sequence', 'text']);
const TEXT_TYPES = new Set(['text', 'varchar', 'name', 'bpchar', 'char', 'sql_identifier', 'character_data']);

/**
 * Does the expression give a name (text) rather than an oid? By its form: a string constant, a
 * concatenation, a text function, a cast to a text type, a column whose name says it holds a
 * name. Anything else is taken as an oid; a name there fails as PostgreSQL fails to read it as one.
 */
function textual(node: Node): boolean {
  switch (nodeTypeOf(node)) {
    case 'A_Const':
      return (node as { A_Const: A_Const }).A_Const.sval !== undefined;
    case 'A_Expr':
      return ((node as { A_Expr: { name?: Node[] } }).A_Expr.name ?? []).some((n) => 'String' in n && n.String.sval === '||');
    case 'FuncCall': {
      const parts = ((node as { FuncCall: FuncCall }).FuncCall.funcname ?? []).map((n) => ('String' in n ? n.String.sval : ''));
      return TEXT_FUNCTIONS.has(parts[parts.length - 1] ?? '');
    }
    case 'TypeCast': {
      const names = ((node as { TypeCast: TypeCast }).TypeCast.typeName?.names ?? []).map((n) => ('String' in n ? n.String.sval : ''));
      return TEXT_TYPES.has(names[names.length - 1] ?? '');
    }
    case 'ColumnRef': {
      const fields = (node as { ColumnRef: { fields?: Node[] } }).ColumnRef.fields ?? [];
      const last = fields[fields.length - 1];
      const name = last && 'String' in last ? (last.String.sval ?? '') : '';
      return /name$|^table_schema$|^udt_schema$|^schemaname$|^table_catalog$/.test(name);
    }
    default:
      return false;
  }
}

function functionName(call: FuncCall): string | undefined {
  const parts = (call.funcname ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
  if (parts.length === 2 && parts[0] !== 'pg_catalog') return undefined;
  return parts.length <= 2 ? parts[parts.length - 1] : undefined;
}

function refused(name: string, hint: string): ProxyError {
  return new ProxyError('function_not_allowed', { message: `this form of ${name}() is not allowed`, hint });
}

/** The replacement of one helper call, or undefined to leave it as written. */
function guardCall(call: FuncCall, principal: Principal): Node | undefined {
  const name = functionName(call);
  if (!name || !CATALOG_FUNCTIONS.includes(name)) return undefined;
  const args = call.args ?? [];
  const withArg = (i: number, node: Node): Node => ({ FuncCall: { ...call, args: args.map((a, j) => (j === i ? node : a)) } });
  if (name === 'pg_get_userbyid') return nameLiteral(principal.user);
  if (name === 'pg_encoding_to_char' || name === 'pg_size_pretty' || args.length === 0) return undefined;
  if (OBJECT_ARGUMENT[name]) return withArg(0, visibleObject(OBJECT_ARGUMENT[name], args[0], false));
  if (PRIVILEGE[name]) {
    if (args.length !== 2) throw refused(name, `Call ${name}(object, privilege): the database role is the proxy's, and privileges of other roles are not available.`);
    return withArg(0, visibleObject(PRIVILEGE[name], args[0], textual(args[0]), principal.database));
  }
  switch (name) {
    case 'obj_description':
      return withArg(0, guarded([args[0]], AS_OID, `EXISTS (SELECT 1 FROM pg_catalog.pg_description ormai_g WHERE ormai_g.objoid = ${AS_OID} AND ormai_g.objsubid = 0)`));
    case 'col_description':
      if (args.length !== 2) return undefined;
      return withArg(
        0,
        guarded(
          [args[0], args[1]],
          AS_OID,
          "EXISTS (SELECT 1 FROM pg_catalog.pg_description ormai_g WHERE ormai_g.objoid = CAST(ormai_a.ormai_v0 AS pg_catalog.oid) AND ormai_g.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ormai_g.objsubid = ormai_a.ormai_v1)",
        ),
      );
    case 'pg_get_serial_sequence':
      if (args.length !== 2) return undefined;
      return withArg(
        0,
        guarded(
          [args[0], args[1]],
          'CAST(ormai_a.ormai_v0 AS text)',
          'EXISTS (SELECT 1 FROM pg_catalog.pg_attribute ormai_g WHERE ormai_g.attrelid = pg_catalog.to_regclass(CAST(ormai_a.ormai_v0 AS text)) AND ormai_g.attname = ormai_a.ormai_v1)',
        ),
      );
    case 'pg_get_expr':
      // An expression tree is read against the relation it belongs to: paired with another
      // relation its column numbers would name that relation's columns, hidden ones included.
      if (args.length < 2) return undefined;
      return withArg(
        0,
        guarded(
          [args[0], args[1]],
          'ormai_a.ormai_v0',
          `(EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef ormai_g WHERE ormai_g.adrelid = ormai_a.ormai_v1 AND CAST(ormai_g.adbin AS text) = CAST(ormai_a.ormai_v0 AS text))
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_index ormai_g WHERE ormai_g.indrelid = ormai_a.ormai_v1 AND (CAST(ormai_g.indexprs AS text) = CAST(ormai_a.ormai_v0 AS text) OR CAST(ormai_g.indpred AS text) = CAST(ormai_a.ormai_v0 AS text)))
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint ormai_g WHERE ormai_g.conrelid = ormai_a.ormai_v1 AND CAST(ormai_g.conbin AS text) = CAST(ormai_a.ormai_v0 AS text))
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_class ormai_g WHERE ormai_g.oid = ormai_a.ormai_v1 AND CAST(ormai_g.relpartbound AS text) = CAST(ormai_a.ormai_v0 AS text)))`,
        ),
      );
  }
  return undefined;
}

/** The reg* type a cast names (`regclass`, `_regtype` for an array), or undefined. */
function regCast(cast: TypeCast): { name: string; array: boolean } | undefined {
  const parts = (cast.typeName?.names ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
  if (parts.length === 0 || parts.length > 2 || (parts.length === 2 && parts[0] !== 'pg_catalog')) return undefined;
  const last = parts[parts.length - 1];
  const array = (cast.typeName?.arrayBounds?.length ?? 0) > 0 || last.startsWith('_');
  const name = last.replace(/^_/, '');
  return Object.hasOwn(REG_CASTS, name) ? { name, array } : undefined;
}

/** A qualified name as PostgreSQL reads it in reg* input: dots outside quotes split, unquoted parts fold to lower case. */
export function qualifiedName(text: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      while (i < text.length && !(text[i] === '"' && text[i + 1] !== '"')) {
        part += text[i];
        i += text[i] === '"' ? 2 : 1;
      }
      if (text[i] !== '"') return undefined;
      i++;
    } else {
      while (i < text.length && text[i] !== '.') part += text[i++];
      part = part.trim().toLowerCase();
      if (!/^[a-z_][a-z0-9_$]*$/.test(part)) return undefined;
    }
    parts.push(part);
    if (i >= text.length) break;
    if (text[i] !== '.') return undefined;
    i++;
  }
  return parts.length > 0 && parts.length <= 2 ? parts : undefined;
}

function typeRefused(text: string): ProxyError {
  return new ProxyError('type_not_allowed', { message: `type "${text}" does not exist` });
}

/** A constant type name: one of the built-in types, checked like a cast to it. */
function checkTypeText(text: string, scope: ReadScope): void {
  let nodes: Node[];
  try {
    nodes = parseStatements(`SELECT NULL::${text}`);
  } catch {
    throw typeRefused(text);
  }
  const target = nodes.length === 1 && nodeTypeOf(nodes[0]) === 'SelectStmt' ? nodeBody<{ targetList?: Node[] }>(nodes[0]).targetList : undefined;
  const val = target?.length === 1 ? (target[0] as { ResTarget: { val?: Node } }).ResTarget.val : undefined;
  const cast = val && nodeTypeOf(val) === 'TypeCast' ? (val as { TypeCast: TypeCast }).TypeCast : undefined;
  if (!cast?.typeName || nodeTypeOf(cast.arg as Node) !== 'A_Const') throw typeRefused(text);
  checkTypeName(cast.typeName, scope.catalog.types);
}

/** A signature's argument types, split at the commas outside parentheses and quotes. */
function splitArguments(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === ',') {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

/** The elements of a constant array literal of plain names ('{int,int8}'), or undefined. */
function arrayElements(text: string): string[] | undefined {
  const m = /^\s*\{(.*)\}\s*$/s.exec(text);
  if (!m) return undefined;
  if (m[1].trim() === '') return [];
  const items = m[1].split(',').map((s) => s.trim().replace(/^"(.*)"$/, '$1'));
  return items.every((s) => /^[A-Za-z0-9_ .()]+$/.test(s)) ? items : undefined;
}

/** A string constant cast to a reg* type: kept when it names what the agent may name, else refused as PostgreSQL refuses a missing name. */
function checkConstant(kind: string, text: string, scope: ReadScope): Node | undefined {
  switch (kind) {
    case 'regclass': {
      const parts = qualifiedName(text);
      const [schema, name] = parts?.length === 2 ? parts : [undefined, parts?.[0]];
      const resolution = name === undefined ? { kind: 'unknown' as const } : scope.resolve(schema, name);
      const system = resolution.kind === 'catalog' && (resolution.schema === 'pg_catalog' || resolution.schema === 'information_schema');
      if (resolution.kind === 'table' || resolution.kind === 'virtual' || system) return undefined;
      throw modelNotAllowed({ relname: name ?? text, ...(schema ? { schemaname: schema } : {}) });
    }
    case 'regtype':
      checkTypeText(text, scope);
      return undefined;
    case 'regnamespace': {
      const parts = qualifiedName(text);
      const visible = new Set(['pg_catalog', 'information_schema', ...[...scope.tables.values()].map((t) => t.schema)]);
      if (parts?.length === 1 && visible.has(parts[0])) return undefined;
      throw new ProxyError('model_not_allowed', { message: `schema "${text}" does not exist` });
    }
    default: {
      // regproc, regprocedure: looked up among the built-in functions only, and so are the
      // argument types of a signature (each is looked up wherever it is named).
      const m = /^\s*(?:pg_catalog\s*\.\s*)?([a-z_][a-z0-9_]*)\s*(\(.*\))?\s*$/s.exec(text);
      if (!m) throw new ProxyError('function_not_allowed', { message: `function "${text}" does not exist` });
      const args = m[2]?.slice(1, -1).trim();
      if (args) for (const type of splitArguments(args)) checkTypeText(type, scope);
      return undefined;
    }
  }
}

function constantText(node: Node | undefined): string | undefined {
  return node && nodeTypeOf(node) === 'A_Const' ? (node as { A_Const: A_Const }).A_Const.sval?.sval : undefined;
}

function guardCast(cast: TypeCast, scope: ReadScope, principal: Principal): Node | undefined {
  const reg = regCast(cast);
  if (!reg || !cast.arg) return undefined;
  const text = constantText(cast.arg);
  if (text !== undefined && !/^\s*\d+\s*$/.test(text)) {
    if (reg.array) {
      const items = arrayElements(text);
      if (!items || reg.name !== 'regtype') throw new ProxyError('function_not_allowed', { message: `cast to ${reg.name}[] is not allowed`, hint: 'Cast each name on its own.' });
      for (const item of items) checkConstant(reg.name, item, scope);
      return undefined;
    }
    if (reg.name === 'regproc' || reg.name === 'regprocedure') {
      checkConstant(reg.name, text, scope);
      // Resolved among the built-ins: never a function of another schema of the same name.
      const qualified = /^\s*pg_catalog\s*\./.test(text) ? text : `pg_catalog.${text.trim()}`;
      return { TypeCast: { ...cast, arg: { A_Const: { sval: { sval: qualified } } } } };
    }
    return checkConstant(reg.name, text, scope);
  }
  if (reg.array) throw new ProxyError('function_not_allowed', { message: `cast to ${reg.name}[] is not allowed`, hint: 'Cast each value on its own.' });
  const lookup = REG_CASTS[reg.name];
  const visible = visibleObject(lookup, cast.arg, textual(cast.arg), principal.database);
  // An unnamed select-list entry keeps the name PostgreSQL gives the cast as written (the
  // argument's column or function name, else the type's): the sub-select would lend it its own.
  const [argName, strength] = figure(cast.arg) ?? ['', 0];
  const target = (visible as { SubLink?: { subselect?: { SelectStmt?: { targetList?: Array<{ ResTarget?: { name?: string } }> } } } }).SubLink?.subselect?.SelectStmt?.targetList?.[0]?.ResTarget;
  if (target) target.name = strength === 2 ? argName : reg.name;
  return fill(`CAST(ormai_arg0 AS pg_catalog.${reg.name})`, [visible]);
}

/**
 * Rewrites every catalog helper call and reg* cast of the tree in place, innermost first (an
 * argument is guarded before the call around it). What a guard adds is never visited again.
 */
export function guardCatalogCalls(tree: Node, scope: ReadScope, principal: Principal): void {
  // Pre-order: every call or cast comes before the calls and casts inside it.
  const found: Array<Record<string, unknown>> = [];
  walk([tree], (node) => {
    if ('FuncCall' in node || 'TypeCast' in node) found.push(node);
  });
  for (let i = found.length - 1; i >= 0; i--) {
    const node = found[i];
    const replacement = 'FuncCall' in node ? guardCall(node.FuncCall as FuncCall, principal) : guardCast(node.TypeCast as TypeCast, scope, principal);
    if (!replacement) continue;
    delete node.FuncCall;
    delete node.TypeCast;
    Object.assign(node, replacement);
  }
}
