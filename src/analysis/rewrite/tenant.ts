// The principal's tenant: as a typed SQL constant in every predicate, and the tenant_forged flag when the agent's text names another.
import type { Node, ResTarget, TypeCast } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope } from '../../policy/scope';
import type { TenantType } from '../../policy/schema';
import { tenantFitsType } from '../../policy/tenant';
import { tenantComparisons } from '../tenant-compare';
import { cloneTree, constantText, parseTemplate } from './nodes';

const casts = new Map<TenantType, TypeCast>();

/** The cast node `'<placeholder>'::type` exactly as the parser builds it, once per type. */
function castTemplate(type: TenantType): TypeCast {
  let cast = casts.get(type);
  if (!cast) {
    const select = parseTemplate(`SELECT '0'::${type}`, `tenant type ${type}`);
    const val = (select.targetList?.[0] as { ResTarget: ResTarget }).ResTarget.val as { TypeCast: TypeCast };
    cast = val.TypeCast;
    casts.set(type, cast);
  }
  return cast;
}

export function tenantType(scope: ReadScope): TenantType {
  return scope.tenantType ?? 'integer';
}

/**
 * `'<tenant>'::<type>`: the id travels as the value of a string constant node, never as SQL
 * text, so no quoting of it can go wrong. An id that does not fit the type is a credential
 * the proxy should never have accepted: internal_error, with the reason in the log only.
 */
export function tenantLiteral(scope: ReadScope, principal: Principal | undefined): Node {
  const type = tenantType(scope);
  if (!principal) {
    throw new ProxyError('internal_error', { logMessage: 'rewrite: a read scope without a principal' });
  }
  if (!tenantFitsType(principal.tenantId, type)) {
    throw new ProxyError('internal_error', { logMessage: `rewrite: the principal's tenant id is not a valid ${type}` });
  }
  const cast = cloneTree(castTemplate(type));
  return { TypeCast: { ...cast, arg: { A_Const: { sval: { sval: principal.tenantId } } } } };
}

/** Does a constant's text denote the principal's tenant, read as the tenant column's type? */
export function isPrincipalTenant(text: string, type: TenantType, tenantId: string): boolean {
  switch (type) {
    case 'integer':
    case 'bigint':
      return sameInteger(text, tenantId);
    case 'uuid':
      return normalizeUuid(text) === normalizeUuid(tenantId);
    case 'text':
      return text === tenantId;
  }
}

function sameInteger(a: string, b: string): boolean {
  const trimmed = a.trim();
  if (!/^-?\d+$/.test(b)) return false;
  if (/^[+-]?\d+$/.test(trimmed)) return BigInt(trimmed) === BigInt(b);
  // A numeric constant such as 1.0 compares equal to 1 in SQL.
  const n = Number(trimmed);
  return Number.isFinite(n) && trimmed !== '' && n === Number(b);
}

function normalizeUuid(value: string): string {
  return value.trim().toLowerCase().replace(/[{}-]/g, '');
}

const TENANT_COLUMNS = new WeakMap<ReadScope, ReadonlySet<string>>();

/** The tenant column names of a scope's tables (a column is a tenant column by name, through any alias). */
export function tenantColumnNames(scope: ReadScope): ReadonlySet<string> {
  let columns = TENANT_COLUMNS.get(scope);
  if (!columns) {
    columns = new Set([...scope.tables.values()].flatMap((t) => (t.tenantColumn ? [t.tenantColumn] : [])));
    TENANT_COLUMNS.set(scope, columns);
  }
  return columns;
}

// tenant_forged: the agent's own text compares a tenant column with a tenant other than its own.

/** What the agent's text says about tenants: forged already, or parameters whose values decide it at Bind. */
export interface TenantForgery {
  forged: boolean;
  /** Parameters compared with a tenant column by equality: `arrays` hold a list of tenants (`= ANY($n)`). */
  params?: { numbers: number[]; arrays: number[] };
}

/**
 * Forged when a comparison with a tenant column (tenant-compare.ts) names a tenant other than the
 * principal's: an equality (`=`, IN, `= ANY`, IS NOT DISTINCT FROM, a row's element, through
 * casts) whose constants name another tenant, or any other comparison with a constant or a
 * parameter in it (`<>`, `>=`, BETWEEN, `tenant_id + 0 = 2`): one tenant has no use for those.
 * The query still runs: the injected tenant predicate makes it match nothing foreign; the flag is
 * for the audit trail. The parameters of an equality are judged at Bind, on their values.
 */
export function tenantForgery(root: Node, scope: ReadScope, tenantId: string): TenantForgery {
  const comparisons = tenantComparisons(root, tenantColumnNames(scope));
  if (comparisons.length === 0) return NOT_FORGED;
  const type = tenantType(scope);
  const foreign = (node: Node): boolean => {
    const text = constantText(node);
    return text !== undefined && !isPrincipalTenant(text, type, tenantId);
  };
  const foreignList = (node: Node): boolean => {
    const text = constantText(node);
    return text !== undefined && listForeign(text, type, tenantId);
  };
  const forged = comparisons.some((c) => (c.equality ? c.constants.some(c.listLiteral ? foreignList : foreign) : c.constants.length + c.params.length > 0));
  const numbers = [...new Set(comparisons.flatMap((c) => (c.equality ? c.params : [])))];
  if (numbers.length === 0) return { forged };
  return { forged, params: { numbers, arrays: [...new Set(comparisons.flatMap((c) => (c.equality ? c.arrays : [])))] } };
}

const NOT_FORGED: TenantForgery = Object.freeze({ forged: false });

/**
 * Do a Bind's values for the parameters compared with a tenant column name another tenant? Text
 * values are read as SQL reads the constant; binary ones of the integer, uuid and text types (and
 * one-dimensional arrays of them) by their layout, an untyped one as the tenant column's type. A
 * value it cannot read (another type, an array of another shape, over 64 KiB) counts as naming
 * another tenant: the flag is raised rather than missed.
 */
export function forgedParams(params: NonNullable<TenantForgery['params']>, bound: { types: readonly number[]; values: readonly (Buffer | null)[]; formats: readonly number[] }, type: TenantType, tenantId: string): boolean {
  for (const n of params.numbers) {
    const value = bound.values[n - 1];
    if (!value) continue;
    // Not read: a list of thousands is no tenant's (and splitting megabytes would hold the thread).
    if (value.length > MAX_JUDGED_BYTES) return true;
    const format = bound.formats.length === 1 ? bound.formats[0] : (bound.formats[n - 1] ?? 0);
    const oid = bound.types[n - 1] ?? 0;
    const list = params.arrays.includes(n);
    // A value it cannot read is not the principal's tenant as far as it can tell.
    const items = format === 0 ? (list ? arrayItems(value.toString('utf8')) : [value.toString('utf8')]) : list ? binaryArrayItems(value, type) : oneItem(binaryText(value, oid, type));
    if (!items || items.some((item) => !isPrincipalTenant(item, type, tenantId))) return true;
  }
  return false;
}

/** Does an array literal (`'{1,2}'`) name a tenant other than the principal's? One it cannot read does. */
function listForeign(text: string, type: TenantType, tenantId: string): boolean {
  const items = arrayItems(text);
  return !items || items.some((item) => !isPrincipalTenant(item, type, tenantId));
}

function oneItem(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : [text];
}

/** The OIDs of the tenant types, for a binary parameter Parse gave no type (PostgreSQL infers the column's). */
const TENANT_OIDS: Record<TenantType, number> = { integer: 23, bigint: 20, uuid: 2950, text: 25 };

/**
 * The elements of a one-dimensional binary array (array_send: dimensions, has-nulls, element type,
 * then length and lower bound per dimension, then each element's length and bytes), as text;
 * undefined for any other shape or element type.
 */
function binaryArrayItems(value: Buffer, type: TenantType): string[] | undefined {
  if (value.length < 12) return undefined;
  const dims = value.readInt32BE(0);
  if (dims === 0) return [];
  if (dims !== 1 || value.length < 20) return undefined;
  const elementType = value.readInt32BE(8);
  const count = value.readInt32BE(12);
  const out: string[] = [];
  let at = 20;
  for (let i = 0; i < count; i++) {
    if (at + 4 > value.length) return undefined;
    const length = value.readInt32BE(at);
    at += 4;
    if (length === -1) continue;
    if (length < 0 || at + length > value.length) return undefined;
    const text = binaryText(value.subarray(at, at + length), elementType, type);
    if (text === undefined) return undefined;
    out.push(text);
    at += length;
  }
  return out;
}

/** The longest parameter value read: longer ones count as naming another tenant. */
const MAX_JUDGED_BYTES = 64 * 1024;

/** A binary parameter of int2, int4, int8, uuid, text or varchar as text (untyped: as the tenant column's type); undefined for any other type. */
function binaryText(value: Buffer, declared: number, type: TenantType): string | undefined {
  const oid = declared === 0 ? TENANT_OIDS[type] : declared;
  if (oid === 21 && value.length === 2) return String(value.readInt16BE(0));
  if (oid === 23 && value.length === 4) return String(value.readInt32BE(0));
  if (oid === 20 && value.length === 8) return String(value.readBigInt64BE(0));
  if (oid === 2950 && value.length === 16) return value.toString('hex');
  if (oid === 25 || oid === 1043) return value.toString('utf8');
  return undefined;
}

/** The elements of a one-dimensional array literal `{1,2,"3"}`; undefined for anything else. */
function arrayItems(text: string): string[] | undefined {
  const inner = /^\s*\{(.*)\}\s*$/s.exec(text)?.[1];
  if (inner === undefined || /[{}\\]/.test(inner)) return undefined;
  return inner.trim() === '' ? [] : inner.split(',').map((item) => item.trim().replace(/^"(.*)"$/s, '$1')).filter((item) => item.toUpperCase() !== 'NULL');
}
