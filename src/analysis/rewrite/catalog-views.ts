// pg_catalog and information_schema relations answered through the policy: each is replaced by a fenced derived table over the real relation that keeps only the objects the policy makes visible.
//
// What is visible (computed once per compiled scope from the catalog the proxy loaded):
//   tables       the policy's tables;
//   columns      their visible columns (denied ones absent, masked ones present with the type the agent sees);
//   indexes      of visible tables, when every column the index reads (keys, expressions, predicate) is visible;
//   constraints  of visible tables, when every column they read is visible (and a foreign key's parent and its columns too);
//   defaults     of visible columns, when the expression reads only visible columns and names no relation but sequences;
//   sequences    owned by visible columns;
//   namespaces   pg_catalog, information_schema and the schemas of visible tables;
//   types        those of visible namespaces, and the types of visible columns (with their arrays' elements).
// Statistics never show other tenants' data: reltuples/relpages read as never analysed, the
// pg_stat* views keep their identifying columns and have every counter NULL. Objects that could
// name hidden columns or other relations (triggers, row security policies, rewrite rules,
// publications, extended statistics) are served empty.
//
// The filter is the proxy's own condition inside the fence (OFFSET 0), so the agent's
// conditions never run on the rows it removes, and it reads oid lists, so it is an index scan.
import type { Node, RangeVar } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import type { CatalogObjects, ReadScope, SystemRelation } from '../../policy/scope';
import { SHOWABLE } from '../settings';
import { barrierViewsOf, visibleType } from './derived';
import { parseTemplate } from './nodes';

/** The oids (and column attnums) of what the policy makes visible. */
export interface Visibility {
  tables: number[];
  /** Visible attnums by table oid. */
  columns: Map<number, number[]>;
  indexes: number[];
  constraints: number[];
  defaults: number[];
  sequences: number[];
  namespaces: number[];
  /** The types of visible columns (a type of another schema, an extension's, is served for them). */
  types: number[];
  /** Masked columns the agent sees as text, and columns the null mask empties: [table oid, attnum]. */
  asText: Array<[number, number]>;
  nulled: Array<[number, number]>;
  /** (schema, table, constraint) of visible constraints, PostgreSQL 15's NOT NULL pseudo-constraints included. */
  constraintNames: Array<[string, string, string]>;
  /** (schema, table, column) of visible columns. */
  columnNames: Array<[string, string, string]>;
  /**
   * The visible constraints and indexes as an error names them (its schema, table and constraint
   * fields): objectKey(schema, table, name). See results/write-errors.ts.
   */
  objectNames: ReadonlySet<string>;
  /** Names of the policy tables' indexes the agent cannot see (an EXPLAIN's plan may name one: results/explain.ts). */
  hiddenIndexNames: readonly string[];
}

/** The key of a table's constraint or index in Visibility.objectNames. */
export function objectKey(schema: string, table: string, name: string): string {
  return `${schema}\0${table}\0${name}`;
}

const visibilities = new WeakMap<ReadScope, Visibility>();

export function visibility(scope: ReadScope): Visibility {
  let v = visibilities.get(scope);
  if (v) return v;
  const objects = scope.catalog.objects;
  const columns = new Map<number, number[]>();
  const asText: Array<[number, number]> = [];
  const nulled: Array<[number, number]> = [];
  const columnNames: Array<[string, string, string]> = [];
  const tables: number[] = [];
  const types = new Set<number>();
  const oidOf = new Map<number, { schema: string; name: string }>();
  // PostgreSQL before 18 lists each NOT NULL column in information_schema as a CHECK constraint
  // named <namespace oid>_<table oid>_<attnum>_not_null.
  const notNullNames: Array<[string, string, string]> = [];
  for (const t of scope.tables.values()) {
    const rel = scope.catalog.relations.get(`${t.schema}.${t.name}`);
    if (!rel) continue;
    const nsp = objects?.namespaces.get(t.schema);
    tables.push(rel.oid);
    oidOf.set(rel.oid, { schema: t.schema, name: t.name });
    columns.set(rel.oid, t.columns.map((c) => c.attnum));
    for (const c of t.columns) {
      if (visibleType(c) !== c.type) asText.push([rel.oid, c.attnum]);
      if (c.mask === 'null') nulled.push([rel.oid, c.attnum]);
      columnNames.push([t.schema, t.name, c.name]);
      // A masked column reads as text: its real type (an enum's labels) is not the agent's to see.
      if (visibleType(c) === c.type) types.add(c.typeOid);
      if (c.notNull && nsp !== undefined) notNullNames.push([t.schema, t.name, `${nsp}_${rel.oid}_${c.attnum}_not_null`]);
    }
  }
  const sees = (rel: number, cols: readonly number[]) => {
    const visible = columns.get(rel);
    return visible !== undefined && cols.every((c) => visible.includes(c));
  };
  const visibleIndexes = (objects?.indexes ?? []).filter((i) => !i.otherRelations && sees(i.rel, i.columns));
  const indexes = visibleIndexes.map((i) => i.oid);
  const constraints = (objects?.constraints ?? []).filter((c) => sees(c.rel, c.columns) && (c.parent === 0 || sees(c.parent, c.parentColumns)));
  const defaults = (objects?.defaults ?? []).filter((d) => !d.otherRelations && sees(d.rel, [d.attnum, ...d.columns])).map((d) => d.oid);
  const sequences = (objects?.sequences ?? []).filter((s) => sees(s.rel, [s.attnum])).map((s) => s.oid);
  const schemas = new Set(['pg_catalog', 'information_schema', ...[...scope.tables.values()].map((t) => t.schema)]);
  const namespaces = [...schemas].map((s) => objects?.namespaces.get(s)).filter((o): o is number => o !== undefined);
  const constraintNames: Array<[string, string, string]> = [];
  const objectNames = new Set<string>();
  for (const c of constraints) {
    const t = oidOf.get(c.rel);
    if (t && c.name) constraintNames.push([t.schema, t.name, c.name]);
    if (t && c.name) objectNames.add(objectKey(t.schema, t.name, c.name));
  }
  for (const i of visibleIndexes) {
    const t = oidOf.get(i.rel);
    if (t && i.name) objectNames.add(objectKey(t.schema, t.name, i.name));
  }
  constraintNames.push(...notNullNames);
  const shown = new Set(indexes);
  const hiddenIndexNames = [...new Set((objects?.indexes ?? []).filter((i) => oidOf.has(i.rel) && !shown.has(i.oid) && i.name).map((i) => i.name))];
  v = { tables, columns, indexes, constraints: constraints.map((c) => c.oid), defaults, sequences, namespaces, types: [...types], asText, nulled, constraintNames, columnNames, objectNames, hiddenIndexNames };
  visibilities.set(scope, v);
  return v;
}

/**
 * Row types. A whole-row value of a policy table read through the session's barrier view
 * (`SELECT c FROM customers c`) has the view's row type, and drivers that decode composites
 * (asyncpg) look that oid up in pg_type and its fields in pg_attribute through pg_class.reltype.
 * So the table's row type, as served, is its view's when the session has made one (else the
 * table's own): pg_class.reltype of the table says so, and pg_type serves that type under the
 * table's name, namespace and relation, whose pg_attribute rows are the view's columns (visible
 * ones, masked as the agent sees them, in the same order). No other row type is served.
 */
function viewType(name: string): string {
  return `(SELECT ormai_v.reltype FROM pg_catalog.pg_class ormai_v WHERE ormai_v.relnamespace = pg_catalog.pg_my_temp_schema() AND ormai_v.relname = ${literal(name)})`;
}

/** The served row type of each visible table, as an expression. */
function rowTypes(c: Context): Array<[number, string]> {
  return c.v.tables.map((oid) => {
    const view = c.views.get(oid);
    const own = `(SELECT ormai_t.reltype FROM pg_catalog.pg_class ormai_t WHERE ormai_t.oid = ${oid})`;
    return [oid, view === undefined ? own : `COALESCE(${viewType(view)}, ${own})`];
  });
}

/** `CASE <type> WHEN <row type of t> THEN <value for t> … ELSE <otherwise> END` over the served row types. */
function byRowType(c: Context, type: string, value: (table: number) => string, otherwise: string): string {
  const types = rowTypes(c);
  if (types.length === 0) return otherwise;
  return `CASE ${types.map(([oid, t]) => `WHEN ${type} = ${t} THEN ${value(oid)}`).join(' ')} ELSE ${otherwise} END`;
}

const oids = (list: readonly number[]): string => `'{${list.join(',')}}'::pg_catalog.oid[]`;
const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const pairs = (list: ReadonlyArray<readonly [number, number]>): string => list.map(([r, a]) => `(${r}, ${a})`).join(', ');

/**
 * Types of visible namespaces and of visible columns, with their arrays, the element types of
 * visible array columns and the base types of visible domains (alias t): what a driver's type
 * introspection (asyncpg) follows from a column's type.
 */
function visibleTypes(v: Visibility, t: string): string {
  const types = oids(v.types);
  return (
    `(${t}.typnamespace = ANY(${oids(v.namespaces)}) OR ${t}.oid = ANY(${types}) OR ${t}.typarray = ANY(${types}) OR ${t}.typelem = ANY(${types})` +
    ` OR ${t}.oid IN (SELECT d.typbasetype FROM pg_catalog.pg_type d WHERE d.oid = ANY(${types})))`
  );
}

/** `(x.a, x.b, x.c) IN ((…), …)` over name triples, or false for none. */
function triples(cols: [string, string, string], list: ReadonlyArray<readonly [string, string, string]>): string {
  if (list.length === 0) return 'false';
  return `(x.${cols[0]}::text, x.${cols[1]}::text, x.${cols[2]}::text) IN (${list.map((t) => `(${t.map(literal).join(', ')})`).join(', ')})`;
}

/** The visible columns of visible tables (and every attribute of a visible index), as a condition on x.attrelid/x.attnum. */
function attributes(v: Visibility, rel = 'x.attrelid', num = 'x.attnum'): string {
  const parts = [`${rel} = ANY(${oids(v.indexes)})`];
  for (const [oid, nums] of v.columns) parts.push(`(${rel} = ${oid} AND ${num} = ANY('{${nums.join(',')}}'::pg_catalog.int2[]))`);
  return `(${parts.join(' OR ')})`;
}

interface Context {
  v: Visibility;
  /** Table oid → the name of the session's barrier view over it (derived.ts). */
  views: ReadonlyMap<number, string>;
  scope: ReadScope;
  principal: Principal;
  objects: CatalogObjects;
  relation: SystemRelation;
}

interface ViewSpec {
  /** The proxy's condition on the relation's rows (alias x). */
  filter(c: Context): string;
  /** Column → SQL expression (alias x) replacing the real value; cast to the column's type. */
  overrides?(c: Context): Record<string, string>;
}

const EMPTY: ViewSpec = { filter: () => 'false' };
const ALL: ViewSpec = { filter: () => 'true' };

/** The counters of a statistics view are NULL: they count every tenant's rows and reads. */
function statistics(keys: readonly string[], filter: (c: Context) => string): ViewSpec {
  return {
    filter,
    overrides: (c) => {
      const out: Record<string, string> = {};
      for (const col of c.relation.columns) if (!keys.includes(col)) out[col] = 'NULL';
      return out;
    },
  };
}

/** Relations the agent sees under the policy: tables, their visible indexes and owned sequences. */
const relations = (v: Visibility): number[] => [...v.tables, ...v.indexes, ...v.sequences];
/**
 * The oid of the relation a row of pg_tables, pg_views, pg_indexes or pg_sequences names, looked
 * up in pg_class by name. Not to_regclass: it checks USAGE on the schema and raises an error for
 * another session's pg_temp_N (every session of the proxy has one), which a role that is not a
 * superuser may not use.
 */
const regclassOf = (schema: string, name: string): string =>
  `(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = x.${schema} AND c.relname = x.${name})`;

const PG_CATALOG: Record<string, ViewSpec> = {
  pg_class: {
    filter: ({ v }) => `x.oid = ANY(${oids(relations(v))})`,
    // Sizes and row estimates count every tenant's rows: read as a relation never analysed.
    overrides: (c) => ({
      reltuples: '-1',
      relpages: '0',
      relallvisible: '0',
      relallfrozen: '0',
      // The transaction counters (age(relfrozenxid)) move with every tenant's writes, as pg_database's do.
      relfrozenxid: 'NULL',
      relminmxid: 'NULL',
      relacl: 'NULL',
      // Counts hidden CHECK constraints too: the visible ones instead.
      relchecks: `(SELECT count(*) FROM pg_catalog.pg_constraint ormai_k WHERE ormai_k.conrelid = x.oid AND ormai_k.contype = 'c' AND ormai_k.oid = ANY(${oids(c.v.constraints)}))`,
      // The column count names no column, but counts the hidden ones: the last visible attnum instead.
      ...(c.v.columns.size ? { relnatts: `CASE ${[...c.v.columns].map(([oid, nums]) => `WHEN x.oid = ${oid} THEN ${Math.max(0, ...nums)}`).join(' ')} ELSE x.relnatts END` } : {}),
      ...(c.views.size ? { reltype: `CASE ${[...c.views.keys()].map((oid) => `WHEN x.oid = ${oid} THEN COALESCE(${viewType(c.views.get(oid)!)}, x.reltype)`).join(' ')} ELSE x.reltype END` } : {}),
    }),
  },
  pg_attribute: {
    filter: ({ v }) => `x.attnum > 0 AND NOT x.attisdropped AND ${attributes(v)}`,
    overrides: ({ v }) => ({
      ...(v.asText.length ? { atttypid: `CASE WHEN (x.attrelid, x.attnum) IN (${pairs(v.asText)}) THEN 25 ELSE x.atttypid END`, atttypmod: `CASE WHEN (x.attrelid, x.attnum) IN (${pairs(v.asText)}) THEN -1 ELSE x.atttypmod END` } : {}),
      ...(v.nulled.length ? { attnotnull: `CASE WHEN (x.attrelid, x.attnum) IN (${pairs(v.nulled)}) THEN false ELSE x.attnotnull END` } : {}),
      // A dropped-then-added column's missing value is a stored data value.
      attmissingval: 'NULL',
      attacl: 'NULL',
    }),
  },
  pg_index: { filter: ({ v }) => `x.indexrelid = ANY(${oids(v.indexes)})` },
  pg_constraint: { filter: ({ v }) => `x.oid = ANY(${oids(v.constraints)})` },
  pg_attrdef: { filter: ({ v }) => `x.oid = ANY(${oids(v.defaults)})` },
  pg_description: {
    filter: ({ v }) =>
      `(x.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ((x.objsubid = 0 AND x.objoid = ANY(${oids(relations(v))})) OR ${attributes(v, 'x.objoid', 'x.objsubid')}))` +
      ` OR (x.classoid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND x.objoid = ANY(${oids(v.constraints)}))` +
      ` OR (x.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND x.objoid = ANY(${oids(v.namespaces)}))`,
  },
  pg_sequence: { filter: ({ v }) => `x.seqrelid = ANY(${oids(v.sequences)})` },
  // last_value moves with every tenant's inserts.
  pg_sequences: { filter: ({ v }) => `${regclassOf('schemaname', 'sequencename')} = ANY(${oids(v.sequences)})`, overrides: ({ principal }) => ({ sequenceowner: literal(principal.user), last_value: 'NULL' }) },
  pg_inherits: { filter: ({ v }) => `x.inhrelid = ANY(${oids(v.tables)}) AND x.inhparent = ANY(${oids(v.tables)})` },
  pg_namespace: { filter: ({ v }) => `x.oid = ANY(${oids(v.namespaces)})`, overrides: () => ({ nspacl: 'NULL' }) },
  // Row types of relations (and their arrays) would name every table, hidden ones included: only
  // the visible tables' served row types, under the table's name (rowTypes above).
  pg_type: {
    filter: (c) =>
      `(x.typrelid = 0 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = x.typelem AND e.typrelid <> 0) AND ${visibleTypes(c.v, 'x')})` +
      (c.v.tables.length ? ` OR x.oid = ANY(ARRAY[${rowTypes(c).map(([, t]) => t).join(', ')}])` : ''),
    overrides: (c) => {
      return {
        typacl: 'NULL',
        ...(c.v.tables.length
          ? {
              typname: `CASE WHEN x.typrelid = 0 THEN x.typname ELSE ${byRowType(c, 'x.oid', (oid) => `(SELECT ormai_t.relname FROM pg_catalog.pg_class ormai_t WHERE ormai_t.oid = ${oid})`, 'x.typname')} END`,
              typnamespace: `CASE WHEN x.typrelid = 0 THEN x.typnamespace ELSE ${byRowType(c, 'x.oid', (oid) => `(SELECT ormai_t.relnamespace FROM pg_catalog.pg_class ormai_t WHERE ormai_t.oid = ${oid})`, 'x.typnamespace')} END`,
              typrelid: `CASE WHEN x.typrelid = 0 THEN x.typrelid ELSE ${byRowType(c, 'x.oid', (oid) => String(oid), 'x.typrelid')} END`,
              // Arrays of row types are not served.
              typarray: 'CASE WHEN x.typrelid = 0 THEN x.typarray ELSE 0 END',
            }
          : {}),
      };
    },
  },
  // Enum labels, ranges and collations of hidden schemas would name their types and values.
  pg_range: { filter: ({ v }) => `EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = x.rngtypid AND ${visibleTypes(v, 't')})` },
  pg_enum: { filter: ({ v }) => `EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = x.enumtypid AND ${visibleTypes(v, 't')})` },
  pg_am: ALL,
  pg_opclass: ALL,
  pg_opfamily: ALL,
  pg_collation: { filter: ({ v }) => `x.collnamespace = ANY(${oids(v.namespaces)})` },
  pg_extension: { filter: () => 'true', overrides: () => ({ extconfig: 'NULL', extcondition: 'NULL' }) },
  pg_language: { filter: () => 'true', overrides: () => ({ lanacl: 'NULL' }) },
  // Only the agent's own database, under the name it connected with.
  pg_database: {
    filter: ({ scope }) => `x.datname = ${literal(scope.catalog.database)}`,
    // The transaction counters (age(datfrozenxid)) move with every tenant's writes.
    overrides: ({ principal }) => ({ datname: principal.database === undefined ? 'NULL' : literal(principal.database), datacl: 'NULL', datfrozenxid: 'NULL', datminmxid: 'NULL' }),
  },
  // The proxy's role, under the agent's name and with no power of its own to show.
  pg_roles: {
    filter: ({ objects }) => `x.rolname = ${literal(objects.role)}`,
    overrides: ({ principal }) => ({ rolname: literal(principal.user), rolsuper: 'false', rolcreaterole: 'false', rolcreatedb: 'false', rolreplication: 'false', rolbypassrls: 'false', rolconfig: 'NULL' }),
  },
  pg_user: {
    filter: ({ objects }) => `x.usename = ${literal(objects.role)}`,
    overrides: ({ principal }) => ({ usename: literal(principal.user), usesuper: 'false', usecreatedb: 'false', userepl: 'false', usebypassrls: 'false', useconfig: 'NULL' }),
  },
  // Built-in functions only: the agent can call no other (and their source is not the agent's to read).
  pg_proc: {
    filter: ({ objects }) => `x.pronamespace = ${objects.namespaces.get('pg_catalog') ?? 11}`,
    overrides: () => ({ prosqlbody: 'NULL', proacl: 'NULL', proconfig: 'NULL' }),
  },
  pg_settings: { filter: () => `x.name = ANY(ARRAY[${[...SHOWABLE, 'max_index_keys', 'max_identifier_length', 'max_function_args', 'block_size', 'integer_datetimes', 'standard_conforming_strings'].map(literal).join(', ')}]::text[])` },
  pg_tables: { filter: ({ v }) => `${regclassOf('schemaname', 'tablename')} = ANY(${oids(v.tables)})`, overrides: ({ principal }) => ({ tableowner: literal(principal.user) }) },
  pg_indexes: { filter: ({ v }) => `${regclassOf('schemaname', 'indexname')} = ANY(${oids(v.indexes)})` },
  // A view's definition names the relations under it.
  pg_views: { filter: ({ v }) => `${regclassOf('schemaname', 'viewname')} = ANY(${oids(v.tables)})`, overrides: ({ principal }) => ({ viewowner: literal(principal.user), definition: 'NULL' }) },
  pg_trigger: EMPTY,
  pg_policy: EMPTY,
  pg_policies: EMPTY,
  pg_rewrite: EMPTY,
  pg_rules: EMPTY,
  pg_publication: EMPTY,
  pg_publication_rel: EMPTY,
  pg_publication_namespace: EMPTY,
  pg_statistic_ext: EMPTY,
  pg_stat_user_tables: statistics(['relid', 'schemaname', 'relname'], ({ v }) => `x.relid = ANY(${oids(v.tables)})`),
  pg_stat_all_tables: statistics(['relid', 'schemaname', 'relname'], ({ v }) => `x.relid = ANY(${oids(v.tables)})`),
  pg_statio_user_tables: statistics(['relid', 'schemaname', 'relname'], ({ v }) => `x.relid = ANY(${oids(v.tables)})`),
  pg_statio_all_tables: statistics(['relid', 'schemaname', 'relname'], ({ v }) => `x.relid = ANY(${oids(v.tables)})`),
  pg_stat_user_indexes: statistics(['relid', 'indexrelid', 'schemaname', 'relname', 'indexrelname'], ({ v }) => `x.indexrelid = ANY(${oids(v.indexes)})`),
  pg_stat_all_indexes: statistics(['relid', 'indexrelid', 'schemaname', 'relname', 'indexrelname'], ({ v }) => `x.indexrelid = ANY(${oids(v.indexes)})`),
  pg_statio_user_indexes: statistics(['relid', 'indexrelid', 'schemaname', 'relname', 'indexrelname'], ({ v }) => `x.indexrelid = ANY(${oids(v.indexes)})`),
};

/** information_schema's *_catalog columns name the database the agent connected to, never the upstream's. */
function connectedCatalog(filter: (c: Context) => string): ViewSpec {
  return {
    filter,
    overrides: ({ relation, principal }) => {
      const out: Record<string, string> = {};
      for (const col of relation.columns) if (col.endsWith('_catalog')) out[col] = principal.database === undefined ? 'NULL' : literal(principal.database);
      return out;
    },
  };
}

const INFORMATION_SCHEMA: Record<string, ViewSpec> = {
  table_constraints: connectedCatalog(({ v }) => triples(['table_schema', 'table_name', 'constraint_name'], v.constraintNames)),
  key_column_usage: connectedCatalog(({ v }) => triples(['table_schema', 'table_name', 'constraint_name'], v.constraintNames)),
  // A foreign key lists the parent's columns here under the child's constraint name.
  constraint_column_usage: connectedCatalog(
    ({ v }) =>
      `${triples(['table_schema', 'table_name', 'column_name'], v.columnNames)} AND (x.constraint_schema::text, x.constraint_name::text) IN (SELECT s, n FROM (VALUES ${
        v.constraintNames.length ? v.constraintNames.map(([s, , n]) => `(${literal(s)}, ${literal(n)})`).join(', ') : "(NULL::text, NULL::text)"
      }) AS k(s, n))`,
  ),
  // Names a constraint by schema and name only, which PostgreSQL does not make unique (two
  // tables may each have an fk_customer): the key it references must be a visible one too.
  referential_constraints: connectedCatalog(({ v }) => {
    if (!v.constraintNames.length) return 'false';
    const pairs = v.constraintNames.map(([s, , n]) => `(${literal(s)}, ${literal(n)})`).join(', ');
    return `(x.constraint_schema::text, x.constraint_name::text) IN (${pairs}) AND (x.unique_constraint_schema::text, x.unique_constraint_name::text) IN (${pairs})`;
  }),
};

/** `schema.name` of every system relation served through the policy (what the catalog loader reads the columns of). */
export const SERVED_SYSTEM_RELATIONS: readonly string[] = [...Object.keys(PG_CATALOG), ...Object.keys(INFORMATION_SCHEMA)];

function specOf(schema: string, name: string): ViewSpec | undefined {
  const table = schema === 'pg_catalog' ? PG_CATALOG : schema === 'information_schema' ? INFORMATION_SCHEMA : undefined;
  return table && Object.hasOwn(table, name) ? table[name] : undefined;
}

/** The columns of a served system relation, as the upstream has them; undefined when it is not served. */
export function servedColumns(scope: ReadScope, schema: string, name: string): readonly string[] | undefined {
  if (!specOf(schema, name)) return undefined;
  return scope.catalog.objects?.systemRelations.get(`${schema}.${name}`)?.columns;
}

const views = new WeakMap<ReadScope, Map<string, Node>>();

/**
 * The policy view that replaces a served system relation; undefined when the relation is not served.
 * `tableoid`: the statement names that system column (psql joins pg_description on
 * `d.classoid = l.tableoid`); a catalog table's view then carries it as a column, as a policy
 * table's view carries its system columns. It is the catalog's own oid, the same for every row
 * and every database. A catalog view (pg_roles, pg_tables…) has none, in PostgreSQL as here.
 */
export function servedRelation(rv: RangeVar, schema: string, name: string, scope: ReadScope, principal: Principal, tableoid = false): Node | undefined {
  const spec = specOf(schema, name);
  const objects = scope.catalog.objects;
  const relation = objects?.systemRelations.get(`${schema}.${name}`);
  if (!spec || !objects || !relation) return undefined;
  const withOid = tableoid && relation.table && !relation.columns.includes('tableoid');
  let byKey = views.get(scope);
  if (!byKey) {
    byKey = new Map();
    views.set(scope, byKey);
  }
  // The tenant names the session's barrier views (row types).
  const key = `${schema}.${name}\u0000${principal.user}\u0000${principal.database ?? ''}\u0000${principal.tenantId}${withOid ? '\u0000tableoid' : ''}`;
  let view = byKey.get(key);
  if (!view) {
    const views = new Map<number, string>();
    for (const view of barrierViewsOf(scope, principal)) {
      const oid = scope.catalog.relations.get(view.table)?.oid;
      if (oid !== undefined) views.set(oid, view.name);
    }
    const c: Context = { v: visibility(scope), views, scope, principal, objects, relation };
    const overrides = spec.overrides?.(c) ?? {};
    const list = relation.columns
      .map((col, i) => {
        const quoted = `"${col.replace(/"/g, '""')}"`;
        return Object.hasOwn(overrides, col) ? `CAST(${overrides[col]} AS ${relation.types[i]}) AS ${quoted}` : `x.${quoted}`;
      })
      .join(', ');
    const sql = `SELECT * FROM (SELECT ${list}${withOid ? ', x.tableoid' : ''} FROM ${schema}.${name} x WHERE ${spec.filter(c)} OFFSET 0) AS v`;
    view = parseTemplate(sql, `${schema}.${name} view`).fromClause?.[0] as Node;
    byKey.set(key, view);
  }
  const out = structuredClone(view) as { RangeSubselect: { alias: { aliasname: string } } };
  out.RangeSubselect.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? name };
  return out as unknown as Node;
}
