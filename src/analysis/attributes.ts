// Attribute notation: `rel.f` and `(expr).f` that name no column are calls f(rel), f(expr) in PostgreSQL; the allow-list applies.
//
// PostgreSQL resolves `q.f` (transformColumnRef) as a column f of the range-table entry q, and
// when q has no such column as the function call f(q) on q's whole-row value (ParseFuncOrColumn
// with is_column). `(expr).f` is a field of a composite value, else f(expr) for a value of any
// type: `(10).pg_get_userbyid`, `x.pg_ls_dir FROM unnest(ARRAY['.']) x`. So a name in attribute
// position passes only when it is an allowed function (either reading is then fine) or when the
// proxy knows, from the statement and the policy, that it is a column of whatever q can denote.
// Everything else is refused, never forwarded for PostgreSQL to decide.
import type { ColumnRef, Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import type { PolicySnapshot } from '../policy/load';
import type { ReadScope } from '../policy/scope';
import { isFunctionAllowed, isRefusedFunctionName } from './functions';
import { Entries, names, outColumns } from './range-entries';
import { walk } from './rewrite/nodes';

function unknownColumn(qualifier: string, name: string): ProxyError {
  return new ProxyError('column_not_found', { message: `column ${qualifier}.${name} does not exist` });
}

function unresolved(name: string): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: `the proxy cannot tell whether .${name} is a column here`,
    hint: 'PostgreSQL reads .name that is no column as a function call. Give the columns names the proxy can see: an alias list such as AS x(a, b), or AS in the subquery.',
  });
}

/**
 * Refuses every attribute-notation name that is neither an allowed function nor known to be a
 * column of what it qualifies. Runs on the agent's tree, before the rewrite.
 */
export function checkAttributeNotation(root: Node, scope: ReadScope | undefined, policy: PolicySnapshot | undefined): void {
  try {
    check(root, scope, policy);
  } catch (err) {
    // Output names are computed recursively over nested subqueries.
    if (err instanceof RangeError) throw new ProxyError('statement_not_understood', { message: 'the statement is nested too deeply' });
    throw err;
  }
}

function check(root: Node, scope: ReadScope | undefined, policy: PolicySnapshot | undefined): void {
  let entries: Entries | undefined;
  // Catalog helpers are not allowed here: the rewrite guards them in call syntax only (rewrite/catalog-functions.ts).
  const allowed = (name: string): boolean => isFunctionAllowed([name], policy);
  if (!scope) {
    // Without a read policy no relation's columns are known: only the names the allow-list
    // refuses by name are refused in attribute position.
    walk([root], (node) => {
      const ref = (node as { ColumnRef?: ColumnRef }).ColumnRef;
      const fields = ref?.fields ?? (node as { A_Indirection?: { indirection?: Node[] } }).A_Indirection?.indirection ?? [];
      const attributes = ref ? fields.slice(1) : fields;
      for (const field of attributes) {
        if ('String' in field && isRefusedFunctionName(field.String.sval ?? '')) throw unresolved(field.String.sval ?? '');
      }
      return false;
    });
    return;
  }
  walk([root], (node) => {
    const ref = (node as { ColumnRef?: ColumnRef }).ColumnRef;
    if (ref) {
      const fields = ref.fields ?? [];
      if (fields.length === 4) {
        // PostgreSQL checks the first name against the upstream database's: an oracle for that name.
        throw new ProxyError('statement_not_understood', {
          message: 'database-qualified column references are not supported',
          hint: 'Qualify columns with the table name or alias only.',
        });
      }
      const last = fields[fields.length - 1];
      if (fields.length < 2 || !last || !('String' in last)) return false;
      const name = last.String.sval ?? '';
      const qualifier = names(fields.slice(0, -1)).pop() ?? '';
      entries ??= new Entries(root, scope, policy);
      if (allowed(name) && !entries.isRaw(qualifier)) return false;
      const readings = entries.get(qualifier);
      // No entry of that name: PostgreSQL answers that the FROM entry is missing; nothing is called.
      if (!readings) return false;
      if (readings.some((c) => c === undefined)) throw unresolved(name);
      if (readings.some((c) => !c!.includes(name))) {
        // The name may be another entry's column (an alias used at two query levels): allowed
        // when no function could take a row under it, so PostgreSQL can only read a column.
        const rowFunctions = scope.catalog.objects?.rowFunctions;
        if (!rowFunctions || rowFunctions.has(name) || !readings.some((c) => c!.includes(name))) throw unknownColumn(qualifier, name);
      }
      return false;
    }
    const indirection = (node as { A_Indirection?: { arg?: Node; indirection?: Node[] } }).A_Indirection;
    if (indirection) {
      (indirection.indirection ?? []).forEach((field, i) => {
        if (!('String' in field)) return;
        const name = field.String.sval ?? '';
        entries ??= new Entries(root, scope, policy);
        if (allowed(name) && !rawRow(indirection.arg, entries)) return;
        if (i !== 0 || !fieldOf(indirection.arg, name, entries)) throw unresolved(name);
      });
    }
    return false;
  });
}

/** `(q)` or `(q.*)` over a write target's row. */
function rawRow(arg: Node | undefined, entries: Entries): boolean {
  const fields = arg && 'ColumnRef' in arg ? (arg.ColumnRef.fields ?? []) : [];
  return fields.length > 0 && 'String' in fields[0] && entries.isRaw(fields[0].String.sval ?? '');
}

/** Is `name` certainly a field of `(arg)`: a whole-row reference to entries that have that column, or a known function result? */
function fieldOf(arg: Node | undefined, name: string, entries: Entries): boolean {
  if (!arg) return false;
  if ('FuncCall' in arg) {
    return outColumns(names(arg.FuncCall.funcname))?.includes(name) ?? false;
  }
  if (!('ColumnRef' in arg)) return false;
  const fields = arg.ColumnRef.fields ?? [];
  // `(q.k).x`: column k of entry q holds a known function's composite result.
  if (fields.length === 2 && 'String' in fields[0] && 'String' in fields[1]) {
    return entries.hasField(fields[0].String.sval ?? '', fields[1].String.sval ?? '', name);
  }
  const star = fields.length === 2 && 'A_Star' in fields[1];
  if (!(fields.length === 1 || star) || !('String' in fields[0])) return false;
  const qualifier = fields[0].String.sval ?? '';
  // `(q)` is a column q before it is the row of an entry q.
  if (!star && entries.mayBeColumn(qualifier)) return false;
  const readings = entries.get(qualifier);
  return readings !== undefined && readings.every((c) => c !== undefined && c.includes(name));
}

