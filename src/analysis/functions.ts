// The function allow-list applied to one tree node: calls, casts to reg* types, session value functions, TABLESAMPLE methods.
import type { FuncCall, Node, RangeTableSample, SQLValueFunction, TypeName } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import type { PolicySnapshot } from '../policy/load';
import { globToRegExp, type CatalogSnapshot } from '../policy/scope';
import {
  BUILTIN_FUNCTIONS,
  BUILTIN_SAMPLE_METHODS,
  CATALOG_CASTS,
  CATALOG_FUNCTIONS,
  INFORMATION_SCHEMA_FUNCTIONS,
  NEVER_ALLOWED,
  REFUSED_BY_DEFAULT,
  REG_TYPES,
} from './function-allowlist';

const BUILTIN: ReadonlySet<string> = new Set(Object.values(BUILTIN_FUNCTIONS).flat());

/** Does the allow-list refuse this pg_catalog name by name (NEVER_ALLOWED, REFUSED_BY_DEFAULT)? */
export function isRefusedFunctionName(name: string): boolean {
  return isNever(name) || isRefusedByDefault(name);
}

/** Is this a curated built-in (whatever the policy says about it)? */
export function isBuiltinFunction(name: string): boolean {
  return BUILTIN.has(name);
}

/** One anchored alternation of the globs: a name is tested once, not once per glob (every call and qualified column is). */
function matcher(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false;
  const re = new RegExp(`^(?:${globs.map((g) => globToRegExp(g).source.slice(1, -1)).join('|')})$`, 'i');
  return (name) => re.test(name);
}

const isNever = matcher(NEVER_ALLOWED);
const isRefusedByDefault = matcher(REFUSED_BY_DEFAULT);

/**
 * A policy's allow_functions as lookup keys: `name` (a pg_catalog name or one the pinned
 * search_path resolves) or `schema.name`; `pg_catalog.x` is the same as `x`. Entries are
 * folded to lower case, as unquoted identifiers are, like the table names in `models`.
 */
const policyAllows = new WeakMap<PolicySnapshot, ReadonlySet<string>>();

function allowedBy(policy: PolicySnapshot | undefined): ReadonlySet<string> {
  if (!policy) return new Set();
  let set = policyAllows.get(policy);
  if (!set) {
    set = new Set(policy.raw.allow_functions.map((f) => f.toLowerCase().replace(/^pg_catalog\./, '')));
    policyAllows.set(policy, set);
  }
  return set;
}

/** The name parts of a function or type reference, as PostgreSQL folded them. */
/** A qualified name's parts (a function's, a type's, an operator's, an alias list), as strings. */
export function nameParts(names: Node[] | undefined): string[] {
  return (names ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
}

/**
 * What `node` calls when it is one of `functions` (keyed `schema.name`, or the name alone as an
 * unqualified call may resolve to it: CatalogSnapshot.raisingFunctions, volatileFunctions): a
 * function call, or an operator of the search path's schemas by the functions it runs
 * (CatalogSnapshot.userOperators). Its name as the agent wrote it, else undefined.
 */
export function callsOneOf(node: Record<string, unknown>, functions: ReadonlySet<string>, userOperators: CatalogSnapshot['userOperators']): string | undefined {
  const call = (node as { FuncCall?: { funcname?: Node[] } }).FuncCall;
  if (call) {
    const parts = nameParts(call.funcname);
    return functions.has(parts.join('.')) ? `${parts[parts.length - 1]}()` : undefined;
  }
  const op = (node as { A_Expr?: { name?: Node[] } }).A_Expr;
  if (!op) return undefined;
  const parts = nameParts(op.name);
  const runs = userOperators?.get(parts[parts.length - 1] ?? '');
  return runs?.some(([schema, name]) => functions.has(`${schema}.${name}`)) ? `the operator ${parts.join('.')}` : undefined;
}

/** An identifier as the agent would have to write it to mean this name. */
function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/**
 * Is a call of this (folded) name allowed? Unqualified and pg_catalog-qualified calls match
 * the built-ins; a call in any other schema only when allow_functions names it exactly. A
 * database-qualified name (db.schema.f) is never allowed.
 */
export function isFunctionAllowed(parts: readonly string[], policy: PolicySnapshot | undefined, catalog = false): boolean {
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p === '')) return false;
  const system = parts.length === 1 || parts[0] === 'pg_catalog';
  const name = parts[parts.length - 1];
  const allowed = allowedBy(policy);
  if (!system) return allowed.has(parts.join('.')) || (parts[0] === 'information_schema' && Object.hasOwn(INFORMATION_SCHEMA_FUNCTIONS, name));
  if (isNever(name)) return false;
  if (allowed.has(name)) return true;
  // `catalog`: the read rewrite runs and confines these calls to visible objects.
  if (catalog && CATALOG_FUNCTIONS.includes(name)) return true;
  return BUILTIN.has(name) && !isRefusedByDefault(name);
}

/** Whether the policy's allow_functions names a function of another schema, qualified or by its name alone. */
export function policyAllowsFunction(schema: string, name: string, policy: PolicySnapshot | undefined): boolean {
  const allowed = allowedBy(policy);
  return allowed.has(`${schema}.${name}`) || allowed.has(name);
}

const SESSION_HINT =
  'The database session belongs to the proxy: its user and role are not available to queries. current_schema() and current_database() answer the pinned schema and the database you connected to; CURRENT_DATE, CURRENT_TIMESTAMP and the like are free to use.';

/**
 * `catalog`: the read rewrite runs (a scope, the real rewrite), which guards catalog helper calls.
 * `userFunctions`: names of functions the search path's schemas define besides pg_catalog
 * (CatalogSnapshot.userFunctions).
 */
export function checkFuncCall(call: FuncCall, policy: PolicySnapshot | undefined, catalog = false, userFunctions?: ReadonlySet<string>): void {
  const parts = nameParts(call.funcname);
  // current_database() is answered by the read rewrite, which needs a policy; without one the
  // upstream database's name would reach the agent.
  const upstreamName = !policy && parts[parts.length - 1] === 'current_database';
  // Unqualified, a built-in's name that a schema of the search path overloads (public.lower(int))
  // runs whichever PostgreSQL's resolution picks, the overload included: only pg_catalog.f, or
  // the policy's allow_functions naming it.
  const name = parts[parts.length - 1];
  if (parts.length === 1 && userFunctions?.has(name) && !allowedBy(policy).has(name)) {
    throw new ProxyError('function_not_allowed', {
      message: `function ${quoteIdent(name)}() is not allowed: a schema of the search path defines a function of that name too`,
      hint: `Qualify the built-in: pg_catalog.${name}(…).`,
    });
  }
  if (!upstreamName && isFunctionAllowed(parts, policy, catalog)) return;
  if (call.funcformat === 'COERCE_SQL_SYNTAX') {
    // Written as SQL syntax (SYSTEM_USER, XMLEXISTS(...)): name it as the agent wrote it.
    const name = parts[parts.length - 1];
    throw new ProxyError('function_not_allowed', {
      message: `${name.toUpperCase()} is not allowed`,
      ...(name === 'system_user' ? { hint: SESSION_HINT } : {}),
    });
  }
  throw new ProxyError('function_not_allowed', { message: `function ${parts.map(quoteIdent).join('.')}() is not allowed` });
}

const REG_HINT =
  'Casts to reg* types look names up in the system catalogs. To discover tables and columns, query information_schema.tables and information_schema.columns.';

/** Refuses a type reference to a reg* type (or an array of one), however it is qualified or spelled. */
/**
 * `builtinTypes` (the catalog's pg_catalog type names) makes the check strict: any other type
 * name is refused in the words PostgreSQL uses for a missing type, whether or not it exists.
 * A table's row type (`NULL::customers`, `json_populate_record(NULL::t, …)`) would otherwise
 * show a table's columns, hidden ones included, and tell which table names exist.
 */
export function checkTypeName(type: TypeName, builtinTypes?: ReadonlySet<string>, catalogCast = false): void {
  const parts = nameParts(type.names);
  if (parts.length === 0) return; // %TYPE references and the like carry no name list here
  const system = parts.length === 1 || parts[0] === 'pg_catalog';
  if (builtinTypes && (!system || parts.length > 2 || !builtinTypes.has(parts[parts.length - 1]))) {
    throw new ProxyError('type_not_allowed', { message: `type "${parts.join('.')}" does not exist` });
  }
  const name = parts[parts.length - 1].replace(/^_/, '');
  if (system && REG_TYPES.has(name) && !(catalogCast && CATALOG_CASTS.has(name))) {
    throw new ProxyError('function_not_allowed', {
      message: `cast to ${name}${type.arrayBounds || parts[parts.length - 1].startsWith('_') ? '[]' : ''} is not allowed`,
      hint: REG_HINT,
    });
  }
}

/**
 * The parameter types a Parse message declares: 0 (let the server infer) or a built-in type
 * a value may safely arrive as (CatalogSnapshot.parameterTypes). A reg* type would resolve the
 * bound text in the catalogs and print names back; a row type would spell out a relation's
 * real columns. Refused like a cast to a type that does not exist.
 */
export function checkParameterTypes(oids: readonly number[], allowed: ReadonlySet<number>): void {
  for (const oid of oids) {
    if (oid !== 0 && !allowed.has(oid)) {
      throw new ProxyError('type_not_allowed', {
        message: `parameter type ${oid} is not allowed`,
        hint: 'Declare parameters as unspecified (type OID 0) or as a built-in type such as text, int4, int8, numeric, bool, date, timestamptz, uuid or jsonb.',
      });
    }
  }
}

/** SQL's niladic value functions: the clock ones and CURRENT_SCHEMA are fine; the session's identity is the proxy's. */
const SESSION_VALUES: Record<string, string> = {
  SVFOP_CURRENT_ROLE: 'CURRENT_ROLE',
  SVFOP_CURRENT_USER: 'CURRENT_USER',
  SVFOP_USER: 'USER',
  SVFOP_SESSION_USER: 'SESSION_USER',
  SVFOP_CURRENT_CATALOG: 'CURRENT_CATALOG',
};

const IDENTITY_VALUES = new Set(['SVFOP_CURRENT_USER', 'SVFOP_SESSION_USER', 'SVFOP_USER', 'SVFOP_CURRENT_ROLE']);

const ALLOWED_VALUES = new Set([
  'SVFOP_CURRENT_DATE',
  'SVFOP_CURRENT_TIME',
  'SVFOP_CURRENT_TIME_N',
  'SVFOP_CURRENT_TIMESTAMP',
  'SVFOP_CURRENT_TIMESTAMP_N',
  'SVFOP_LOCALTIME',
  'SVFOP_LOCALTIME_N',
  'SVFOP_LOCALTIMESTAMP',
  'SVFOP_LOCALTIMESTAMP_N',
  // current_schema() in SQL's spelling: the first schema of the search_path the proxy pins.
  'SVFOP_CURRENT_SCHEMA',
]);

/**
 * `identity`: the read rewrite runs (a policy and a principal), and replaces CURRENT_USER,
 * SESSION_USER, USER and CURRENT_ROLE with the agent's own user name (rewrite/index.ts).
 */
export function checkValueFunction(fn: SQLValueFunction, identity = false): void {
  const op = fn.op ?? '';
  if (ALLOWED_VALUES.has(op)) return;
  if (identity && IDENTITY_VALUES.has(op)) return;
  throw new ProxyError('function_not_allowed', {
    // An operator the grammar gains later is refused too, named by its enum.
    message: `${SESSION_VALUES[op] ?? op} is not allowed`,
    hint: SESSION_HINT,
  });
}

/** TABLESAMPLE's method names a sampling function: the two built-in ones, or one the policy lists. */
export function checkSampleMethod(sample: RangeTableSample, policy: PolicySnapshot | undefined): void {
  const parts = nameParts(sample.method);
  const system = parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog');
  const name = parts[parts.length - 1] ?? '';
  if (system && BUILTIN_SAMPLE_METHODS.includes(name)) return;
  if (parts.length <= 2 && allowedBy(policy).has(parts.join('.').replace(/^pg_catalog\./, ''))) return;
  throw new ProxyError('function_not_allowed', {
    message: `TABLESAMPLE method ${parts.map(quoteIdent).join('.')} is not allowed`,
    hint: 'Use TABLESAMPLE BERNOULLI (percent) or TABLESAMPLE SYSTEM (percent).',
  });
}
