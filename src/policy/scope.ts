// The compiled read scope: a policy applied to the live catalog — which relations exist for the agent, with which columns and masks.
import type { MaskStrategy, TenantType } from './schema';
import type { PolicySnapshot } from './load';
import type { Node } from '@pgsql/types';
import { analysisLoaded, parseStatements } from '../analysis/parser';
import { rowSecurityProblem } from './row-security';

/** One column of a real relation, as the upstream catalog describes it. */
export interface CatalogColumn {
  name: string;
  attnum: number;
  /** format_type() of the column, e.g. 'character varying(120)'. */
  type: string;
  typeOid: number;
  notNull: boolean;
  /** Filled in by the database: an identity, a generated column, or a serial's sequence default. */
  generated?: boolean;
  /** The type's schema and name in pg_type (information_schema's udt_schema, udt_name). */
  udtSchema?: string;
  udtName?: string;
  /** pg_attribute.attidentity: 'a' GENERATED ALWAYS, 'd' BY DEFAULT; absent for other columns. */
  identity?: 'a' | 'd';
  /** A stored generated column (GENERATED ALWAYS AS (…) STORED). */
  stored?: boolean;
  /**
   * A leakproof comparison of it may raise: its collation is neither the database default nor
   * "C", or its type is composite, geometric or a domain with such a collation (see
   * ScopedTable.comparisonsMayRaise).
   */
  comparisonsMayRaise?: boolean;
  /** A generated column's (stored or virtual): the table's columns its expression reads. */
  generatedFrom?: string[];
  /** The column has a default (pg_attribute.atthasdef): an INSERT that leaves it out stores that. */
  hasDefault?: boolean;
}

export interface CatalogRelation {
  schema: string;
  name: string;
  oid: number;
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, f foreign table. */
  kind: string;
  /** pg_class.reltuples when the catalog was loaded (-1: never analysed). */
  rowEstimate: number;
  columns: CatalogColumn[];
  /** Primary key columns in key order (loaded for registered relations; absent without a primary key). */
  primaryKey?: string[];
  /** Single-column foreign keys of registered relations: column → `schema.table`(parentColumn). */
  foreignKeys?: Array<{ column: string; parent: string; parentColumn: string }>;
  /** Row-level security as it applies to the proxy's role (loaded for registered relations). */
  rowSecurity?: RowSecurityFacts;
}

/** What pg_class and pg_policy say of a registered table's row-level security, for the proxy's role. */
export interface RowSecurityFacts {
  enabled: boolean;
  forced: boolean;
  /** The role has the owner's privileges: row-level security does not apply to it unless forced. */
  owned: boolean;
  /** The proxy's tenant policy (policy/row-security.ts TENANT_POLICY), when the table has one. */
  tenantPolicy?: { restrictive: boolean; command: string; applies: boolean; qual: string | null; withCheck: string | null };
}

/** What the proxy knows of the upstream database; loaded at start and on policy reload. */
export interface CatalogSnapshot {
  database: string;
  /** The pinned search_path, in order (pg_catalog is searched first implicitly, as in PostgreSQL). */
  searchPath: string[];
  /** Relations by `schema.name`; columns are loaded only for relations a policy registers. */
  relations: Map<string, CatalogRelation>;
  /** Names of the built-in types (pg_catalog), the only ones a statement may name. */
  types: ReadonlySet<string>;
  /**
   * OIDs a Parse message may declare for its parameters: built-in base, enum, range and
   * multirange types, without the reg* types (which look names up in the catalogs) and without
   * row types (whose text form lists a relation's real columns).
   */
  parameterTypes: ReadonlySet<number>;
  /** The same types by pg_catalog name (arrays as `_elem`), for the types SQL PREPARE declares by name. */
  parameterTypeNames?: ReadonlyMap<string, number>;
  /**
   * Operator names that schemas of the search_path define besides pg_catalog (a DBA's, whatever
   * its name; an extension's, when pg_catalog has no operator of that name), with the functions
   * they run (schema, name): an unqualified use of one may run a function the built-in allow-list
   * never saw, so only the policy's allow_functions may allow it.
   */
  userOperators?: ReadonlyMap<string, ReadonlyArray<readonly [schema: string, name: string]>>;
  /** pg_catalog's operator names: another one (made since the catalog was loaded) is refused. */
  builtinOperators?: ReadonlySet<string>;
  /**
   * Names of functions that schemas of the search path define, other than an extension's: an
   * unqualified call of such a name may run one of them (a DBA's public.lower(int)).
   */
  userFunctions?: ReadonlySet<string>;
  /**
   * Functions outside pg_catalog whose result is of a type whose leakproof comparisons may raise
   * (a collation of the DBA's, a composite, a geometric type): `schema.name`, and the name alone
   * where the schema is on the search path (analysis/rewrite/collations.ts).
   */
  raisingFunctions?: ReadonlySet<string>;
  /**
   * Functions with a volatile overload (pg_proc.provolatile), keyed as raisingFunctions (pg_catalog's
   * by their names alone too): a count of the rows they choose says nothing of the write's.
   */
  volatileFunctions?: ReadonlySet<string>;
  /** Why row-level security never applies to that role ('is a superuser', 'has BYPASSRLS'); absent when it can. */
  roleBypassesRowSecurity?: string;
  /** What the policy-filtered pg_catalog is built from (absent: no catalog relation is served but pg_type, pg_namespace and pg_range). */
  objects?: CatalogObjects;
  /** server_version_num of the upstream (180000 and up: RETURNING old.x, rewrite/capture.ts). */
  serverVersionNum?: number;
}

/** An object that hangs off a registered table, with the columns (attnums) of that table it reads. */
export interface TableObject {
  oid: number;
  /** The table's oid. */
  rel: number;
  columns: number[];
}

/** A system relation the proxy serves: its oid and its columns in the upstream's version. */
export interface SystemRelation {
  oid: number;
  /** A table (relkind 'r'), which has system columns; the rest are views. */
  table: boolean;
  columns: string[];
  /** format_type() of each column, in the same order. */
  types: string[];
}

/** Indexes, constraints, defaults and owned sequences of the registered tables, and the served system relations. */
export interface CatalogObjects {
  /** otherRelations: the index reads a relation other than its table (never shown). */
  indexes: Array<TableObject & { name: string; otherRelations: boolean }>;
  /** type: pg_constraint.contype; parent (0 for none) and parentColumns: a foreign key's referenced table. */
  constraints: Array<TableObject & { type: string; name: string; parent: number; parentColumns: number[] }>;
  /** attnum: the column the default belongs to; otherRelations: it names a relation other than a sequence. */
  defaults: Array<TableObject & { attnum: number; otherRelations: boolean }>;
  /** Sequences owned by a column (serial, identity). */
  sequences: Array<{ oid: number; rel: number; attnum: number }>;
  /** Every namespace's oid by name. */
  namespaces: ReadonlyMap<string, number>;
  /** By `schema.name`: the pg_catalog and information_schema relations served through the policy. */
  systemRelations: ReadonlyMap<string, SystemRelation>;
  /** The upstream role the proxy logs in as (pg_roles shows it under the agent's name). */
  role: string;
  /** Names of the functions `q.f` attribute notation could call on a row (catalog-objects.ts). */
  rowFunctions: ReadonlySet<string>;
}

/** A column the agent can see; `mask` set when it only ever sees the masked value. */
export interface VisibleColumn {
  name: string;
  /** Position in the real table (1-based, gaps where columns are hidden or dropped). */
  attnum: number;
  type: string;
  typeOid: number;
  notNull: boolean;
  /** Filled in by the database (see CatalogColumn). */
  generated?: boolean;
  udtSchema?: string;
  udtName?: string;
  identity?: 'a' | 'd';
  stored?: boolean;
  mask?: MaskStrategy;
  /** CatalogColumn.hasDefault. */
  hasDefault?: true;
}

/** A registered model as the agent sees it. */
export interface ScopedTable {
  schema: string;
  name: string;
  model: string;
  /** Visible columns in attnum order (denied ones removed). */
  columns: VisibleColumn[];
  /** Set when the table is tenant-scoped: every read filters on it, writes set it. */
  tenantColumn?: string;
  /** Optional extra predicate (SQL over the table's own columns) from the policy. */
  rowFilter?: string;
  /** The policy lets statements read the system columns (SYSTEM_COLUMNS) of this table. */
  systemColumns?: true;
  /** The primary key, when the table has one and all its columns are visible: it identifies rows in dry runs. */
  primaryKey?: string[];
  /** Single-column foreign keys from visible columns: the parent's rows must be checked through its policy view. */
  foreignKeys?: Array<{ column: string; parent: string; parentColumn: string }>;
  /**
   * PostgreSQL's row-level security confines the proxy's role to the tenant of this table
   * (policy/row-security.ts), and the policy adds no row filter: the session's view of it can be
   * a plain view, which the planner flattens into the agent's query.
   */
  rowSecurity?: true;
  /**
   * A visible column's leakproof comparisons may raise (CatalogColumn.comparisonsMayRaise): below
   * a barrier view, on other tenants' rows, the error would tell of them (rewrite/collations.ts).
   */
  comparisonsMayRaise?: true;
}

export type Resolution =
  | { kind: 'table'; table: ScopedTable }
  | { kind: 'virtual'; name: 'tables' | 'columns' }
  | { kind: 'catalog'; schema: string; name: string }
  | { kind: 'unknown' };

export interface ReadScope {
  readonly policy: PolicySnapshot;
  readonly catalog: CatalogSnapshot;
  readonly tenantType?: TenantType;
  /** Registered tables by `schema.name`. */
  readonly tables: ReadonlyMap<string, ScopedTable>;
  /** Resolves a relation reference as PostgreSQL would with the pinned search_path. */
  resolve(schema: string | undefined, name: string): Resolution;
}

/** PostgreSQL's system columns of a table: hidden from reads unless the model sets system_columns. */
export const SYSTEM_COLUMNS: readonly string[] = ['tableoid', 'ctid', 'xmin', 'cmin', 'xmax', 'cmax'];

const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_toast']);

/** Case-insensitive glob over a name: `*` any run, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Default strategy from a column's name, when the policy names none. */
export function defaultMaskStrategy(column: string): MaskStrategy {
  const c = column.toLowerCase();
  if (c.includes('email')) return 'email';
  if (c.includes('phone') || c.includes('mobile')) return 'phone';
  return 'partial';
}

/** `table.column` or `schema.table.column` rules, split into matchers. */
function fieldMatcher(ref: string): (schema: string, table: string, column: string) => boolean {
  const parts = ref.split('.');
  const [schemaGlob, tableGlob, columnGlob] = parts.length === 3 ? parts : [undefined, parts[0], parts[1]];
  const s = schemaGlob ? globToRegExp(schemaGlob) : undefined;
  const t = globToRegExp(tableGlob);
  const c = globToRegExp(columnGlob);
  return (schema, table, column) => (!s || s.test(schema)) && t.test(table) && c.test(column);
}

const isGlob = (ref: string) => /[*?]/.test(ref);

/**
 * Every mask_fields, deny_fields and writable_fields entry written without a glob must name a
 * column that exists: a typo (`customers.emial`, `custmers.email`) would otherwise leave the real
 * column unmasked, visible or writable, silently. An entry for a table that exists but that this
 * policy does not list is kept (it has nothing to act on); globs may match nothing.
 */
function checkNamedColumns(policy: PolicySnapshot, catalog: CatalogSnapshot, tables: ReadonlyMap<string, ScopedTable>): void {
  const registered = [...tables.values()].map((t) => findRelation(catalog, t.schema, t.name)!);
  const check = (what: string, ref: string) => {
    if (isGlob(ref)) return;
    const parts = ref.toLowerCase().split('.');
    const [schema, table] = parts.length === 3 ? [parts[0], parts[1]] : [undefined, parts[0]];
    const match = fieldMatcher(ref);
    const listed = registered.filter((r) => r.name === table && (schema === undefined || r.schema === schema));
    if (listed.length > 0 ? listed.some((r) => r.columns.some((c) => match(r.schema, r.name, c.name))) : findRelation(catalog, schema, table) !== undefined) return;
    throw new PolicyCatalogError(`policy ${policy.name}: ${what} "${ref}" names no existing column`);
  };
  for (const m of policy.raw.mask_fields) check('mask_fields entry', typeof m === 'string' ? m : m.field);
  for (const field of policy.raw.deny_fields ?? []) if (field.includes('.')) check('deny_fields entry', field);
  for (const grant of policy.raw.enable_writes) {
    for (const [model, columns] of Object.entries(grant.writable_fields ?? {})) for (const column of columns) check('writable_fields entry', `${model}.${column}`);
  }
}

/**
 * Every column a row_filter names must be one of its table's (hidden ones included: the filter
 * runs on the table itself). A typo would otherwise be an error on every read of the table at
 * run time, or, for a filter such as `deleted_at IS NULL` on a table that calls it `deletedat`,
 * never load at all. Needs the parser (loaded before any policy is compiled at start-up and by
 * `check`); subqueries in a filter name other relations and are not looked into.
 */
function checkRowFilters(policy: PolicySnapshot, catalog: CatalogSnapshot, tables: ReadonlyMap<string, ScopedTable>): void {
  if (!analysisLoaded()) return;
  for (const t of tables.values()) {
    if (!t.rowFilter) continue;
    const rel = findRelation(catalog, t.schema, t.name)!;
    let stmts: Node[];
    try {
      stmts = parseStatements(`SELECT WHERE ${t.rowFilter}`);
    } catch {
      throw new PolicyCatalogError(`policy ${policy.name}: the row_filter of ${t.schema}.${t.name} is not an SQL condition`);
    }
    const names: string[][] = [];
    const visit = (value: unknown): void => {
      if (value === null || typeof value !== 'object') return;
      if (Array.isArray(value)) return value.forEach(visit);
      const node = value as Record<string, unknown>;
      if ('SubLink' in node) return;
      const ref = node.ColumnRef as { fields?: Node[] } | undefined;
      if (ref) {
        const fields = ref.fields ?? [];
        if (fields.every((f) => 'String' in f)) names.push(fields.map((f) => ((f as { String: { sval?: string } }).String.sval ?? '')));
        return;
      }
      for (const v of Object.values(node)) visit(v);
    };
    visit(stmts);
    for (const parts of names) {
      const column = parts[parts.length - 1];
      const qualifier = parts.length > 1 ? parts[parts.length - 2] : t.name;
      if (qualifier !== t.name || !rel.columns.some((c) => c.name === column)) {
        throw new PolicyCatalogError(`policy ${policy.name}: the row_filter of ${t.schema}.${t.name} names "${parts.join('.')}", which is no column of the table`);
      }
    }
  }
}

export class PolicyCatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyCatalogError';
  }
}

/**
 * Compiles a policy against the catalog. Throws PolicyCatalogError when the policy names a
 * table that does not exist upstream (a typo must not silently expose nothing or everything).
 */
export function compileScope(policy: PolicySnapshot, catalog: CatalogSnapshot): ReadScope {
  const denied = policy.deniedFieldGlobs.map((g) => (g.includes('.') ? fieldMatcher(g) : ((_s: string, _t: string, c: string) => globToRegExp(g).test(c))));
  const masks = policy.raw.mask_fields.map((m) => (typeof m === 'string' ? { field: m, strategy: undefined } : m));
  const maskers = masks.map((m) => ({ match: fieldMatcher(m.field), strategy: m.strategy }));
  const tenantColumn = policy.raw.tenant_scope?.column.toLowerCase();

  const tables = new Map<string, ScopedTable>();
  policy.models.forEach((model, index) => {
    const spec = policy.raw.models[index];
    const relation = findRelation(catalog, model.schema, model.table);
    if (!relation) throw new PolicyCatalogError(`policy ${policy.name}: table "${model.schema ? `${model.schema}.` : ''}${model.table}" does not exist in the database`);
    const columns: VisibleColumn[] = [];
    let comparisonsMayRaise = false;
    for (const col of relation.columns) {
      if (denied.some((d) => d(relation.schema, relation.name, col.name))) continue;
      // A generated column computed from a denied or masked column would serve it (its length,
      // its lower-case copy, a search vector over it): hidden with it.
      if (col.generatedFrom?.some((from) => denied.some((d) => d(relation.schema, relation.name, from)) || maskers.some((m) => m.match(relation.schema, relation.name, from)))) continue;
      if (col.comparisonsMayRaise) comparisonsMayRaise = true;
      const masker = maskers.find((m) => m.match(relation.schema, relation.name, col.name));
      columns.push({
        name: col.name,
        attnum: col.attnum,
        type: col.type,
        typeOid: col.typeOid,
        notNull: col.notNull,
        ...(col.generated ? { generated: true } : {}),
        ...(col.udtName !== undefined ? { udtSchema: col.udtSchema, udtName: col.udtName } : {}),
        ...(col.identity ? { identity: col.identity } : {}),
        ...(col.stored ? { stored: true } : {}),
        ...(col.hasDefault ? { hasDefault: true as const } : {}),
        ...(masker ? { mask: masker.strategy ?? defaultMaskStrategy(col.name) } : {}),
      });
    }
    const scoped = tenantColumn && relation.columns.some((c) => c.name === tenantColumn) ? tenantColumn : undefined;
    if (scoped && !columns.some((c) => c.name === scoped)) {
      throw new PolicyCatalogError(`policy ${policy.name}: the tenant column "${scoped}" of ${relation.name} is denied or masked`);
    }
    if (scoped && columns.find((c) => c.name === scoped)?.mask) {
      throw new PolicyCatalogError(`policy ${policy.name}: the tenant column "${scoped}" of ${relation.name} cannot be masked`);
    }
    const guarded = scoped !== undefined && !model.rowFilter && rowSecurityProblem(relation, scoped, policy.raw.tenant_scope?.type ?? 'integer', catalog) === undefined;
    tables.set(`${relation.schema}.${relation.name}`, {
      schema: relation.schema,
      name: relation.name,
      model: model.name,
      columns,
      ...(scoped ? { tenantColumn: scoped } : {}),
      ...(model.rowFilter ? { rowFilter: model.rowFilter } : {}),
      ...(typeof spec !== 'string' && spec?.system_columns ? { systemColumns: true as const } : {}),
      ...(relation.primaryKey?.every((k) => columns.some((c) => c.name === k)) ? { primaryKey: relation.primaryKey } : {}),
      ...(relation.foreignKeys?.length ? { foreignKeys: relation.foreignKeys.filter((f) => columns.some((c) => c.name === f.column)) } : {}),
      ...(guarded ? { rowSecurity: true as const } : {}),
      ...(comparisonsMayRaise ? { comparisonsMayRaise: true as const } : {}),
    });
  });

  checkNamedColumns(policy, catalog, tables);
  checkRowFilters(policy, catalog, tables);

  const resolve = (schema: string | undefined, name: string): Resolution => {
    if (schema !== undefined) {
      if (schema === 'information_schema' && (name === 'tables' || name === 'columns')) return { kind: 'virtual', name };
      if (SYSTEM_SCHEMAS.has(schema) || schema.startsWith('pg_temp') || schema.startsWith('pg_toast')) return { kind: 'catalog', schema, name };
      const table = tables.get(`${schema}.${name}`);
      return table ? { kind: 'table', table } : { kind: 'unknown' };
    }
    // pg_catalog is searched before the search_path unless the path names it (the proxy pins it without).
    if (catalog.relations.has(`pg_catalog.${name}`)) return { kind: 'catalog', schema: 'pg_catalog', name };
    for (const s of catalog.searchPath) {
      if (catalog.relations.has(`${s}.${name}`)) {
        const table = tables.get(`${s}.${name}`);
        return table ? { kind: 'table', table } : { kind: 'unknown' };
      }
    }
    return { kind: 'unknown' };
  };

  return Object.freeze({ policy, catalog, tenantType: policy.raw.tenant_scope?.type, tables, resolve });
}

function findRelation(catalog: CatalogSnapshot, schema: string | undefined, name: string): CatalogRelation | undefined {
  if (schema) return catalog.relations.get(`${schema}.${name}`);
  for (const s of catalog.searchPath) {
    const r = catalog.relations.get(`${s}.${name}`);
    if (r) return r;
  }
  return undefined;
}
