// information_schema.tables and .columns answered from the policy, and ormai.approvals from the approvals store: VALUES lists of only what the agent may see.
import type { Node, RangeVar, ResTarget, SelectStmt } from '@pgsql/types';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { servedColumns } from './catalog-views';
import { visibleType } from './derived';
import { cloneTree, intConst, parseTemplate, stringConst } from './nodes';

type Kind = 'text' | 'int' | 'timestamptz';
type Value = string | number | null;

// The standard column sets, in PostgreSQL's order, so that ordinary queries (and `SELECT *`) see
// what they would see upstream. The values are computed from the policy's view of each column.
const TABLE_COLUMNS: Array<[string, Kind]> = [
  ['table_catalog', 'text'],
  ['table_schema', 'text'],
  ['table_name', 'text'],
  ['table_type', 'text'],
  ['self_referencing_column_name', 'text'],
  ['reference_generation', 'text'],
  ['user_defined_type_catalog', 'text'],
  ['user_defined_type_schema', 'text'],
  ['user_defined_type_name', 'text'],
  ['is_insertable_into', 'text'],
  ['is_typed', 'text'],
  ['commit_action', 'text'],
];

const COLUMN_COLUMNS: Array<[string, Kind]> = [
  ['table_catalog', 'text'],
  ['table_schema', 'text'],
  ['table_name', 'text'],
  ['column_name', 'text'],
  ['ordinal_position', 'int'],
  ['column_default', 'text'],
  ['is_nullable', 'text'],
  ['data_type', 'text'],
  ['character_maximum_length', 'int'],
  ['character_octet_length', 'int'],
  ['numeric_precision', 'int'],
  ['numeric_precision_radix', 'int'],
  ['numeric_scale', 'int'],
  ['datetime_precision', 'int'],
  ['interval_type', 'text'],
  ['interval_precision', 'int'],
  ['character_set_catalog', 'text'],
  ['character_set_schema', 'text'],
  ['character_set_name', 'text'],
  ['collation_catalog', 'text'],
  ['collation_schema', 'text'],
  ['collation_name', 'text'],
  ['domain_catalog', 'text'],
  ['domain_schema', 'text'],
  ['domain_name', 'text'],
  ['udt_catalog', 'text'],
  ['udt_schema', 'text'],
  ['udt_name', 'text'],
  ['scope_catalog', 'text'],
  ['scope_schema', 'text'],
  ['scope_name', 'text'],
  ['maximum_cardinality', 'int'],
  ['dtd_identifier', 'text'],
  ['is_self_referencing', 'text'],
  ['is_identity', 'text'],
  ['identity_generation', 'text'],
  ['identity_start', 'text'],
  ['identity_increment', 'text'],
  ['identity_maximum', 'text'],
  ['identity_minimum', 'text'],
  ['identity_cycle', 'text'],
  ['is_generated', 'text'],
  ['generation_expression', 'text'],
  ['is_updatable', 'text'],
  ['ormai_mask', 'text'],
];

/** The column names of information_schema.tables or .columns as the proxy serves them. */
export function virtualColumnNames(name: 'tables' | 'columns'): readonly string[] {
  return (name === 'tables' ? TABLE_COLUMNS : COLUMN_COLUMNS).map(([c]) => c);
}

/** Built once per compiled scope and database name: the answer depends on the policy, the catalog and the name the agent connected to. */
const cache = new WeakMap<ReadScope, Map<string, SelectStmt>>();

/**
 * `(VALUES ...) AS <alias>(<standard column names>)`, or an empty typed SELECT when nothing is
 * visible. `database` is the name the agent connected with: every *_catalog column shows it,
 * never the upstream database's own name (NULL when the session has none).
 */
export function virtualTable(name: 'tables' | 'columns', rv: RangeVar, scope: ReadScope, database: string | undefined): Node {
  let byName = cache.get(scope);
  if (!byName) {
    byName = new Map();
    cache.set(scope, byName);
  }
  const key = `${name}\u0000${database ?? ''}`;
  let select = byName.get(key);
  if (!select) {
    const db = database ?? null;
    select = name === 'tables' ? build(TABLE_COLUMNS, tableRows(scope, db)) : build(COLUMN_COLUMNS, columnRows(scope, db));
    byName.set(key, select);
  }
  const columns = name === 'tables' ? TABLE_COLUMNS : COLUMN_COLUMNS;
  return {
    RangeSubselect: {
      subquery: { SelectStmt: cloneTree(select) },
      alias: { aliasname: rv.alias?.aliasname ?? rv.relname, colnames: columns.map(([c]) => ({ String: { sval: c } })) },
    },
  };
}

function sortedTables(scope: ReadScope): ScopedTable[] {
  // Code-unit order, not the host's locale: the same scope always prints the same text.
  const key = (t: ScopedTable): string => `${t.schema}\u0000${t.name}`;
  return [...scope.tables.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Tables, partitioned tables and foreign tables take writes; views are reported as not insertable. */
function isBaseTable(kind: string | undefined): boolean {
  return kind === 'r' || kind === 'p' || kind === 'f';
}

function tableRows(scope: ReadScope, db: string | null): Value[][] {
  return sortedTables(scope).map((t) => {
    const kind = scope.catalog.relations.get(`${t.schema}.${t.name}`)?.kind;
    const base = isBaseTable(kind);
    return [db, t.schema, t.name, base ? 'BASE TABLE' : 'VIEW', null, null, null, null, null, base ? 'YES' : 'NO', 'NO', null];
  });
}

function columnRows(scope: ReadScope, db: string | null): Value[][] {
  const rows: Value[][] = [];
  for (const t of sortedTables(scope)) {
    const updatable = isBaseTable(scope.catalog.relations.get(`${t.schema}.${t.name}`)?.kind) ? 'YES' : 'NO';
    t.columns.forEach((c, i) => {
      const type = visibleType(c);
      // A mask turns a non-string column into text: the agent's view of its type is text.
      const asText = type !== c.type;
      const udt = asText ? { schema: 'pg_catalog', name: 'text' } : c.udtName !== undefined ? { schema: c.udtSchema ?? null, name: c.udtName } : undefined;
      const numeric = numericFacts(type);
      rows.push([
        db,
        t.schema,
        t.name,
        c.name,
        i + 1,
        // column_default: a default is an arbitrary expression. It names sequences (serial's
        // nextval('customers_id_seq'::regclass)), functions and sometimes other relations the agent
        // cannot see, and its literals may be business data. is_identity and is_generated say what
        // tools need to know (the database fills the column); the expression itself stays NULL.
        null,
        // The null strategy makes every value NULL, whatever the column's constraint.
        c.notNull && c.mask !== 'null' ? 'NO' : 'YES',
        udt && udt.schema !== 'pg_catalog' && !type.endsWith('[]') ? 'USER-DEFINED' : dataType(type),
        maxLength(type),
        octetLength(type),
        numeric.precision,
        numeric.radix,
        numeric.scale,
        datetimePrecision(type),
        intervalType(type),
        null,
        // Character sets are not reported by PostgreSQL either; collations and domains are not loaded.
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        udt ? db : null,
        udt?.schema ?? null,
        udt?.name ?? null,
        null,
        null,
        null,
        null,
        // PostgreSQL's dtd_identifier is the attribute number, whose gaps would count hidden columns.
        String(i + 1),
        'NO',
        c.identity ? 'YES' : 'NO',
        c.identity === 'a' ? 'ALWAYS' : c.identity === 'd' ? 'BY DEFAULT' : null,
        // The options of an identity's sequence: an object the agent cannot see (its name, its
        // current value); reported as NULL like the default.
        null,
        null,
        null,
        null,
        null,
        c.stored ? 'ALWAYS' : 'NEVER',
        // A generation expression names the columns it reads, hidden ones included.
        null,
        updatable,
        c.mask ?? null,
      ]);
    });
  }
  return rows;
}

/** information_schema's spelling: the type without its modifiers ('character varying(120)' → 'character varying'). */
export function dataType(type: string): string {
  if (type.endsWith('[]')) return 'ARRAY';
  // An interval's fields ('interval year to month') are interval_type, not part of the type.
  if (/^interval\b/.test(type)) return 'interval';
  return type.replace(/\([^)]*\)/g, '').replace(/\s+/g, ' ').trim();
}

function maxLength(type: string): number | null {
  const m = /^(character varying|character|varchar|char|bit varying|bit)\((\d+)\)$/.exec(type);
  return m ? Number(m[2]) : null;
}

/** Octets per character in UTF8 (the proxy's sessions are always UTF8), as PostgreSQL reports it. */
const MAX_CHAR_OCTETS = 4;
/** What PostgreSQL reports for character types without a length: the largest field, 1 GB. */
const UNBOUNDED_OCTETS = 1073741824;

function octetLength(type: string): number | null {
  const m = /^(character varying|character|text)(?:\((\d+)\))?$/.exec(type);
  if (!m) return null;
  return m[2] ? Number(m[2]) * MAX_CHAR_OCTETS : UNBOUNDED_OCTETS;
}

/** numeric_precision, numeric_precision_radix, numeric_scale as PostgreSQL's information_schema computes them. */
function numericFacts(type: string): { precision: number | null; radix: number | null; scale: number | null } {
  const binary: Record<string, [number, number | null]> = { smallint: [16, 0], integer: [32, 0], bigint: [64, 0], real: [24, null], 'double precision': [53, null] };
  if (binary[type]) return { precision: binary[type][0], radix: 2, scale: binary[type][1] };
  const m = /^numeric(?:\((\d+)(?:,(\d+))?\))?$/.exec(type);
  if (!m) return { precision: null, radix: null, scale: null };
  return { precision: m[1] ? Number(m[1]) : null, radix: 10, scale: m[1] ? Number(m[2] ?? 0) : null };
}

function datetimePrecision(type: string): number | null {
  if (type === 'date') return 0;
  const m = /^(time|timestamp|interval)(?:\((\d+)\))?(?: (?:with|without) time zone)?$/.exec(type) ?? /^(interval) [a-z ]+?(?:\((\d+)\))?$/.exec(type);
  if (!m) return null;
  return m[2] ? Number(m[2]) : 6;
}

function intervalType(type: string): string | null {
  const m = /^interval ([a-z ]+?)(?:\(\d+\))?$/.exec(type);
  return m ? m[1].toUpperCase() : null;
}

let nulls: Record<Kind, Node> | undefined;

/** `NULL::text`, `NULL::integer`, `NULL::timestamptz`: typed so that a column of NULLs (or an empty list) still has its type. */
function typedNull(kind: Kind): Node {
  if (!nulls) {
    const select = parseTemplate('SELECT NULL::text, NULL::integer, NULL::timestamptz', 'typed NULL');
    const [text, int, timestamptz] = (select.targetList as Array<{ ResTarget: ResTarget }>).map((t) => t.ResTarget.val as Node);
    nulls = { text, int, timestamptz };
  }
  return cloneTree(nulls[kind]);
}

let nameCast: Node | undefined;

/** `'<database>'::name` (NULL::name without one): what current_database() returns, as a constant. */
/** `CAST('<text>' AS name)`, or a NULL of type name: what the proxy answers for a name the session must not show. */
export function nameLiteral(text: string | undefined): Node {
  nameCast ??= (parseTemplate("SELECT NULL::name", 'name cast').targetList?.[0] as { ResTarget: ResTarget }).ResTarget.val as Node;
  const cast = cloneTree(nameCast) as { TypeCast: { arg: Node } };
  if (text !== undefined) cast.TypeCast.arg = stringConst(text);
  return cast as unknown as Node;
}

function value(v: Value, kind: Kind): Node {
  if (v === null) return typedNull(kind);
  if (kind === 'timestamptz') {
    // The typed NULL's cast, around the value's text: '…'::timestamptz.
    const cast = typedNull(kind) as { TypeCast: { arg: Node } };
    cast.TypeCast.arg = stringConst(String(v));
    return cast as unknown as Node;
  }
  return typeof v === 'number' ? intConst(v) : stringConst(v);
}

function build(columns: Array<[string, Kind]>, rows: Value[][]): SelectStmt {
  if (rows.length === 0) {
    // No visible tables: an empty result that still has the columns and their types.
    return {
      targetList: columns.map(([, kind]) => ({ ResTarget: { val: typedNull(kind) } })),
      whereClause: { A_Const: { boolval: {} } },
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    };
  }
  return {
    // Every NULL is typed; string constants resolve to text in VALUES.
    valuesLists: rows.map((row) => ({ List: { items: row.map((v, i) => value(v, columns[i][1])) } })),
    limitOption: 'LIMIT_OPTION_DEFAULT',
    op: 'SETOP_NONE',
  };
}

/**
 * pg_catalog.pg_type for drivers that read type metadata at connect (postgres.js, JDBC):
 * every type except the row types of relations and their arrays, which would name every
 * table, hidden ones included. Fenced with OFFSET 0 so the agent's own conditions cannot
 * run on the rows the filter removes.
 */
const TYPES_VIEW = `SELECT * FROM (SELECT t.* FROM pg_catalog.pg_type t WHERE t.typrelid = 0
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typrelid <> 0) OFFSET 0) AS pg_type`;
let typesView: Node | undefined;

/** pg_type's columns (PostgreSQL 14 and later), for resolving `t.name` over the view above. */
export const PG_TYPE_COLUMNS: readonly string[] = [
  'oid', 'typname', 'typnamespace', 'typowner', 'typlen', 'typbyval', 'typtype', 'typcategory', 'typispreferred',
  'typisdefined', 'typdelim', 'typrelid', 'typsubscript', 'typelem', 'typarray', 'typinput', 'typoutput', 'typreceive',
  'typsend', 'typmodin', 'typmodout', 'typanalyze', 'typalign', 'typstorage', 'typnotnull', 'typbasetype', 'typtypmod',
  'typndims', 'typcollation', 'typdefaultbin', 'typdefault', 'typacl',
];

export function typesTable(rv: RangeVar): Node {
  typesView ??= parseTemplate(TYPES_VIEW, 'pg_type view').fromClause?.[0] as Node;
  const view = cloneTree(typesView) as { RangeSubselect: { alias: { aliasname: string } } };
  view.RangeSubselect.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? 'pg_type' };
  return view as unknown as Node;
}

/**
 * pg_catalog.pg_namespace for drivers and ORMs that look up schemas (SQLAlchemy's type lookup at
 * connect, JDBC getSchemas, Kysely getSchemas): only pg_catalog, information_schema and the
 * schemas of the policy's visible tables, so no other schema's name shows; nspacl (which names
 * roles) is NULL. Fenced like the pg_type view.
 */
export function namespacesTable(rv: RangeVar, scope: ReadScope): Node {
  const schemas = [...new Set(['pg_catalog', 'information_schema', ...[...scope.tables.values()].map((t) => t.schema)])].sort();
  const list = schemas.map((n) => `'${n.replace(/'/g, "''")}'`).join(', ');
  const view = parseTemplate(
    `SELECT * FROM (SELECT n.oid, n.nspname, n.nspowner, CAST(NULL AS aclitem[]) AS nspacl FROM pg_catalog.pg_namespace n WHERE n.nspname IN (${list}) OFFSET 0) AS pg_namespace`,
    'pg_namespace view',
  ).fromClause?.[0] as { RangeSubselect: { alias: { aliasname: string } } };
  view.RangeSubselect.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? 'pg_namespace' };
  return view as unknown as Node;
}

/** pg_namespace's columns, for resolving `n.name` over the view above. */
export const PG_NAMESPACE_COLUMNS: readonly string[] = ['oid', 'nspname', 'nspowner', 'nspacl'];

/**
 * pg_catalog.pg_range, which Sequelize reads at connect: range types describe types only (every
 * one of them is in the pg_type view too), never a table or its rows.
 */
export function rangesTable(rv: RangeVar): Node {
  const view = parseTemplate('SELECT * FROM (SELECT r.* FROM pg_catalog.pg_range r OFFSET 0) AS pg_range', 'pg_range view').fromClause?.[0] as {
    RangeSubselect: { alias: { aliasname: string } };
  };
  view.RangeSubselect.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? 'pg_range' };
  return view as unknown as Node;
}

/** pg_range's columns (PostgreSQL 14 and later). */
export const PG_RANGE_COLUMNS: readonly string[] = ['rngtypid', 'rngsubtype', 'rngmultitypid', 'rngcollation', 'rngsubopc', 'rngcanonical', 'rngsubdiff'];

const CATALOG_VIEWS: Record<string, readonly string[]> = { pg_type: PG_TYPE_COLUMNS, pg_namespace: PG_NAMESPACE_COLUMNS, pg_range: PG_RANGE_COLUMNS };

/**
 * The system relations served through a policy view, and their columns: those of the catalog
 * the proxy loaded (catalog-views.ts), or, for a catalog loaded without its objects, the three
 * type and schema relations drivers read at connect.
 */
export function catalogViewColumns(scope: ReadScope, schema: string, name: string): readonly string[] | undefined {
  if (scope.catalog.objects) return servedColumns(scope, schema, name);
  return schema === 'pg_catalog' && Object.hasOwn(CATALOG_VIEWS, name) ? CATALOG_VIEWS[name] : undefined;
}

/** One of the principal's own approvals, as ormai.approvals shows it. */
export interface AgentApproval {
  id: string;
  state: string;
  operation: string;
  model: string;
  rule: string;
  reason?: string;
  createdAt: string;
  expiresAt: string;
  received: number;
  required: number;
  rowsAffected?: number;
  error?: string;
}

const APPROVAL_COLUMNS: Array<[string, Kind]> = [
  ['approval_id', 'text'],
  ['state', 'text'],
  ['operation', 'text'],
  ['model', 'text'],
  ['rule', 'text'],
  ['reason', 'text'],
  ['created_at', 'timestamptz'],
  ['expires_at', 'timestamptz'],
  ['approvals_received', 'int'],
  ['approvals_required', 'int'],
  ['rows_affected', 'int'],
  ['error', 'text'],
];

export const APPROVAL_COLUMN_NAMES: readonly string[] = APPROVAL_COLUMNS.map(([c]) => c);

/** `ormai.approvals`: the principal's own approvals, as the session read them from the store for this statement. */
export function approvalsTable(rv: RangeVar, approvals: readonly AgentApproval[]): Node {
  const rows: Value[][] = approvals.map((a) => [
    a.id, a.state, a.operation, a.model, a.rule, a.reason ?? null, a.createdAt, a.expiresAt, a.received, a.required, a.rowsAffected ?? null, a.error ?? null,
  ]);
  return {
    RangeSubselect: {
      subquery: { SelectStmt: build(APPROVAL_COLUMNS, rows) },
      alias: { aliasname: rv.alias?.aliasname ?? rv.relname, colnames: APPROVAL_COLUMNS.map(([c]) => ({ String: { sval: c } })) },
    },
  };
}
