// Names a statement qualifies with a schema, or that PostgreSQL looks up along the search path: operators, collations, text search configurations.
//
// Each is looked up wherever its schema says, a hidden schema included: found or not would tell
// the agent what exists there, and a found operator runs its function, which the allow-list
// never saw. Only pg_catalog and the schemas the policy shows are names the agent may use.
import type { FuncCall, Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import type { ReadScope } from '../policy/scope';
import { nameParts, policyAllowsFunction } from './functions';
import { lastName } from './reg-coercion';
import { qualifiedName } from './rewrite/catalog-functions';

/** Text search functions whose first argument, when they have two or more, is a regconfig. */
export const REGCONFIG_FUNCTIONS = new Set(['to_tsvector', 'to_tsquery', 'plainto_tsquery', 'phraseto_tsquery', 'websearch_to_tsquery', 'ts_headline', 'json_to_tsvector', 'jsonb_to_tsvector']);

const schemaSets = new WeakMap<ReadScope, ReadonlySet<string>>();
const CATALOG_ONLY: ReadonlySet<string> = new Set(['pg_catalog']);

/** Where a qualified name may be looked up: pg_catalog and the policy's schemas. */
export function visibleSchemas(scope: ReadScope | undefined): ReadonlySet<string> {
  if (!scope) return CATALOG_ONLY;
  let set = schemaSets.get(scope);
  if (!set) schemaSets.set(scope, (set = new Set(['pg_catalog', ...[...scope.tables.values()].map((t) => t.schema)])));
  return set;
}

/**
 * OPERATOR(schema.op) looks the operator up in that schema, a hidden one included, and runs its
 * function: only pg_catalog's. Unqualified, a name that a schema of the search path defines
 * besides pg_catalog (CatalogSnapshot.userOperators) is refused unless the policy's
 * allow_functions allows every function behind it, and so is a name neither pg_catalog nor the
 * loaded catalog knows.
 */
export function checkOperator(names: Node[] | undefined, scope: ReadScope | undefined): void {
  const name = nameParts(names);
  // pgvector's <=>, pg_trgm's <%: allowed when the policy allows every function the name runs.
  const functions = name.length === 1 ? scope?.catalog.userOperators?.get(name[0]) : undefined;
  // A name neither pg_catalog nor the loaded catalog knows: an operator made since it was loaded.
  const unknown = name.length === 1 && functions === undefined && scope?.catalog.builtinOperators !== undefined && !scope.catalog.builtinOperators.has(name[0]);
  const refused = unknown || (functions !== undefined && !functions.every(([schema, fn]) => policyAllowsFunction(schema, fn, scope?.policy)));
  if ((name.length > 1 && name[0] !== 'pg_catalog') || refused) {
    throw new ProxyError('function_not_allowed', {
      message: `operator ${name.join('.')} is not allowed`,
      hint: "Use the built-in operators, unqualified or qualified with pg_catalog; an extension's operator needs its function in the policy's allow_functions.",
    });
  }
}

/** A qualified collation is looked up in its schema; unqualified, along the pinned search_path. */
export function checkCollation(collname: Node[] | undefined, schemas: ReadonlySet<string>): void {
  const names = nameParts(collname);
  if (names.length > 1 && !schemas.has(names[0])) {
    throw new ProxyError('type_not_allowed', {
      message: `collation "${names.join('.')}" does not exist`,
      hint: 'Use a collation of pg_catalog, such as "C", unqualified or qualified with pg_catalog.',
    });
  }
}

/**
 * A text search configuration named by an untyped string (`to_tsvector('english', …)`): read as
 * a regconfig. Unqualified, it is looked up along the search_path the proxy pins (the policy's
 * schema, then pg_catalog); qualified, in any schema, hidden ones included. A parameter could be
 * either, so only a constant is accepted there.
 */
export function checkConfigArgument(call: FuncCall, schemas: ReadonlySet<string>): void {
  const args = call.args ?? [];
  if (args.length < 2 || !REGCONFIG_FUNCTIONS.has(lastName(call.funcname))) return;
  // ts_headline(document, query[, options]) has no configuration: two arguments, or three whose
  // second is a query (PostgreSQL picks that form then).
  if (lastName(call.funcname) === 'ts_headline' && (args.length === 2 || (args.length === 3 && isQuery(args[1])))) return;
  // Anything but a string constant may be a number (an implicit cast makes an integer or an oid a
  // regconfig: a configuration by oid, hidden ones included) or a bound name: refused.
  const first = args[0];
  if (!('A_Const' in first && first.A_Const.sval !== undefined)) {
    throw new ProxyError('function_not_allowed', {
      message: 'a text search configuration must be named by a string constant',
      hint: "Name a built-in configuration as a constant, e.g. to_tsvector('english', body).",
    });
  }
  const text = 'A_Const' in args[0] ? args[0].A_Const.sval?.sval : undefined;
  // Read as PostgreSQL reads the name: quoted parts as they are, the rest folded, at most two.
  const parts = text === undefined ? undefined : qualifiedName(text);
  // All digits is an oid to PostgreSQL's regconfig input: any configuration, hidden ones included.
  if (parts && !/^\s*\d+\s*$/.test(text ?? '') && (parts.length === 1 || schemas.has(parts[0]))) return;
  throw new ProxyError('function_not_allowed', {
    message: `text search configuration "${text ?? `$${(args[0] as { ParamRef?: { number?: number } }).ParamRef?.number ?? ''}`}" is not allowed`,
    hint: "Name a built-in configuration as a constant, e.g. to_tsvector('english', body).",
  });
}

/** A tsquery value by its form: a cast to tsquery or a call of a function that makes one. */
function isQuery(node: Node): boolean {
  if ('TypeCast' in node) return lastName(node.TypeCast.typeName?.names) === 'tsquery';
  return 'FuncCall' in node && /tsquery$/.test(lastName(node.FuncCall.funcname));
}
