// SQL-level PREPARE and EXECUTE: the types a PREPARE declares, and the arguments an EXECUTE may pass.
//
// PREPARE's body is analysed by the same pipeline as the query of a protocol Parse (classify.ts,
// pipeline.ts); its declared types follow the rules of Parse's declared type OIDs. EXECUTE runs a
// statement PostgreSQL already holds, whose analysis the session kept (session/sql-prepare.ts):
// all it adds is its arguments, which must not be able to read anything.
import type { ExecuteStmt, Node, PrepareStmt, TypeCast, TypeName } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { checkTypeName } from './functions';
import type { AnalysisContext } from './types';

const TYPE_HINT =
  'Declare parameters as built-in types such as text, int, bigint, numeric, boolean, date, timestamptz, uuid or jsonb, or leave the type list out and let PostgreSQL infer them.';

/**
 * The OIDs of the types PREPARE declares, as Parse would declare them. PostgreSQL keeps only a
 * declared type's OID (PrepareQuery: typenameTypeId), so `varchar(10)` declares varchar. Only the
 * types a Parse may declare are accepted: built-in base, enum, range and multirange types and
 * arrays of them, never reg* types (they look names up in the catalogs) nor row types (their text
 * form spells out a relation's columns).
 */
export function parameterTypeOids(prepare: PrepareStmt, ctx: AnalysisContext): number[] {
  const declared = (prepare.argtypes ?? []).map((n) => ('TypeName' in n ? n.TypeName : undefined));
  if (declared.length === 0) return [];
  const names = ctx.scope?.catalog.parameterTypeNames;
  return declared.map((type) => {
    if (!type) throw new ProxyError('statement_not_understood', { message: 'a PREPARE parameter type is not understood' });
    // reg* types get the function allow-list's refusal and hint, as in a cast.
    checkTypeName(type, ctx.scope?.catalog.types);
    const oid = names?.get(typeKey(type));
    if (oid === undefined) {
      throw new ProxyError('type_not_allowed', { message: `parameter type ${typeLabel(type)} is not allowed`, hint: TYPE_HINT });
    }
    return oid;
  });
}

/** The pg_catalog name of a declared type: `int4`, `_int4` for `int[]`; '' for what names no plain built-in. */
function typeKey(type: TypeName): string {
  const parts = (type.names ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
  if (type.setof || type.pct_type || parts.length === 0 || parts.length > 2) return '';
  if (parts.length === 2 && parts[0] !== 'pg_catalog') return '';
  const name = parts[parts.length - 1];
  if ((type.typmods ?? []).some((m) => !('A_Const' in m))) return '';
  return type.arrayBounds?.length ? `_${name}` : name;
}

function typeLabel(type: TypeName): string {
  const parts = (type.names ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
  return `"${parts.filter((p) => p !== 'pg_catalog').join('.')}${type.arrayBounds?.length ? '[]' : ''}"`;
}

const ARGUMENT_HINT =
  "Pass each argument as a constant (42, 'text', NULL), a cast of one ('2024-01-01'::date), or a $n parameter over the extended protocol; to use a value from a table, SELECT it first.";

/**
 * EXECUTE's arguments are evaluated by PostgreSQL before the statement runs (EvaluateParams), as
 * any expression: a subquery or a function there would read data outside the prepared
 * statement's analysis. Only what cannot read anything is accepted: constants, casts of them
 * (to types a statement may name), and the extended protocol's own parameters.
 */
export function checkExecuteArguments(execute: ExecuteStmt, ctx: AnalysisContext): void {
  (execute.params ?? []).forEach((param, i) => {
    if (!isConstant(param, ctx)) {
      throw new ProxyError('statement_not_allowed', {
        message: `argument ${i + 1} of EXECUTE ${execute.name ?? ''} is not a constant`,
        hint: ARGUMENT_HINT,
      });
    }
  });
}

function isConstant(node: Node, ctx: AnalysisContext): boolean {
  if ('A_Const' in node || 'ParamRef' in node) return true;
  if ('TypeCast' in node) {
    const cast: TypeCast = node.TypeCast;
    if (!cast.arg || !cast.typeName) return false;
    checkTypeName(cast.typeName, ctx.scope?.catalog.types);
    return isConstant(cast.arg, ctx);
  }
  return false;
}

/** The text of a constant argument as a parameter value (null for NULL); undefined for anything else. */
export function constantText(node: Node): string | null | undefined {
  if (!('A_Const' in node)) return undefined;
  const c = node.A_Const as Record<string, unknown> & { isnull?: boolean };
  if (c.isnull) return null;
  if ('ival' in c) return String((c.ival as { ival?: number }).ival ?? 0);
  if ('fval' in c) return String((c.fval as { fval?: string }).fval ?? '0');
  if ('sval' in c) return (c.sval as { sval?: string }).sval ?? '';
  if ('boolval' in c) return (c.boolval as { boolval?: boolean }).boolval ? 'true' : 'false';
  if ('bsval' in c) return (c.bsval as { bsval?: string }).bsval ?? '';
  return undefined;
}
