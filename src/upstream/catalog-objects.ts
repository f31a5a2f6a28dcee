// What the policy-filtered pg_catalog is built from: the objects that hang off registered tables (indexes, constraints, defaults, owned sequences) with the columns each one reads, and the column lists of the catalog relations the proxy serves.
import type { Client } from 'pg';
import type { CatalogObjects, SystemRelation } from '../policy/scope';

/**
 * Indexes of the registered tables, with every column they read: the key columns (indkey) and
 * the columns of expressions and partial-index predicates, which PostgreSQL records in pg_depend.
 */
const INDEXES = `
  SELECT i.indexrelid::int8 AS oid, i.indrelid::int8 AS rel, (SELECT c.relname FROM pg_class c WHERE c.oid = i.indexrelid) AS name,
         ARRAY(SELECT k::int FROM unnest(i.indkey::int2[]) AS k WHERE k > 0
               UNION SELECT d.refobjsubid::int FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0) AS columns,
         EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> i.indrelid) AS other_relations
    FROM pg_index i WHERE i.indrelid = ANY($1::oid[])`;

/** Constraints of the registered tables: the columns they constrain or read, and a foreign key's parent. */
const CONSTRAINTS = `
  SELECT c.oid::int8 AS oid, c.conrelid::int8 AS rel, c.contype::text AS type, c.conname AS name,
         ARRAY(SELECT k::int FROM unnest(coalesce(c.conkey, '{}')) AS k
               UNION SELECT d.refobjsubid::int FROM pg_depend d
                WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.conrelid AND d.refobjsubid > 0) AS columns,
         c.confrelid::int8 AS parent, ARRAY(SELECT k::int FROM unnest(coalesce(c.confkey, '{}')) AS k) AS parent_columns
    FROM pg_constraint c WHERE c.conrelid = ANY($1::oid[])`;

/**
 * Defaults and generation expressions of the registered tables: the columns an expression reads,
 * and whether it names a relation other than a sequence (nextval('…'::regclass) names one).
 */
const DEFAULTS = `
  SELECT d.oid::int8 AS oid, d.adrelid::int8 AS rel, d.adnum::int AS attnum,
         ARRAY(SELECT dep.refobjsubid::int FROM pg_depend dep
                WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
                  AND dep.refobjid = d.adrelid AND dep.refobjsubid > 0) AS columns,
         EXISTS (SELECT 1 FROM pg_depend dep JOIN pg_class r ON r.oid = dep.refobjid
                  WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
                    AND dep.refobjid <> d.adrelid AND r.relkind <> 'S') AS other_relations
    FROM pg_attrdef d WHERE d.adrelid = ANY($1::oid[])`;

/** Sequences owned by a column of a registered table (serial, identity). */
const SEQUENCES = `
  SELECT d.objid::int8 AS oid, d.refobjid::int8 AS rel, d.refobjsubid::int AS attnum
    FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
     AND d.refobjid = ANY($1::oid[]) AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')`;

const NAMESPACES = `SELECT n.oid::int8 AS oid, n.nspname AS name FROM pg_namespace n`;

/** The columns (name and type) of the system relations the proxy serves, in the upstream's own version. */
const SYSTEM_RELATIONS = `
  SELECT n.nspname AS schema, c.relname AS name, c.oid::int8 AS oid, c.relkind::text AS kind,
         array_agg(a.attname::text ORDER BY a.attnum) AS columns,
         array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
   WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relname = ANY($1::text[])
     AND a.attnum > 0 AND NOT a.attisdropped
   GROUP BY n.nspname, c.relname, c.oid, c.relkind`;

/**
 * Names of functions that could take a row as their only argument (a record, polymorphic or
 * composite first argument, or variadic "any"): the only functions `q.f` can call when q has no
 * column f. Any other name there is a column or an error, never a call.
 */
const ROW_FUNCTIONS = `
  SELECT DISTINCT p.proname AS name FROM pg_proc p
   WHERE p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
     AND (p.provariadic <> 0
          OR p.proargtypes[0] IN ('record'::regtype, '"any"'::regtype, 'anyelement'::regtype, 'anycompatible'::regtype,
                                  'anynonarray'::regtype, 'anycompatiblenonarray'::regtype)
          OR EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = p.proargtypes[0] AND t.typtype = 'c'))`;

type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : []);

/** Loads the objects of the tables `wanted` (their oids) and the served system relations named in `served`. */
export async function loadCatalogObjects(client: Client, wanted: readonly number[], served: readonly string[]): Promise<CatalogObjects> {
  const q = async (sql: string, params: unknown[] = []): Promise<Row[]> => (await client.query(sql, params)).rows as Row[];
  // One connection: the queries run one after the other.
  const indexes = await q(INDEXES, [wanted]);
  const constraints = await q(CONSTRAINTS, [wanted]);
  const defaults = await q(DEFAULTS, [wanted]);
  const sequences = await q(SEQUENCES, [wanted]);
  const namespaces = await q(NAMESPACES);
  const systems = await q(SYSTEM_RELATIONS, [served]);
  const role = await q('SELECT current_user AS role');
  const rowFunctions = await q(ROW_FUNCTIONS);
  const systemRelations = new Map<string, SystemRelation>();
  for (const r of systems) {
    systemRelations.set(`${String(r.schema)}.${String(r.name)}`, { oid: num(r.oid), table: r.kind === 'r', columns: r.columns as string[], types: r.types as string[] });
  }
  return {
    indexes: indexes.map((r) => ({ oid: num(r.oid), rel: num(r.rel), name: String(r.name), columns: nums(r.columns), otherRelations: r.other_relations === true })),
    constraints: constraints.map((r) => ({
      oid: num(r.oid),
      rel: num(r.rel),
      type: String(r.type),
      name: String(r.name),
      columns: nums(r.columns),
      parent: num(r.parent),
      parentColumns: nums(r.parent_columns),
    })),
    defaults: defaults.map((r) => ({ oid: num(r.oid), rel: num(r.rel), attnum: num(r.attnum), columns: nums(r.columns), otherRelations: r.other_relations === true })),
    sequences: sequences.map((r) => ({ oid: num(r.oid), rel: num(r.rel), attnum: num(r.attnum) })),
    namespaces: new Map(namespaces.map((r) => [String(r.name), num(r.oid)])),
    systemRelations,
    role: String(role[0]?.role ?? ''),
    rowFunctions: new Set(rowFunctions.map((r) => String(r.name))),
  };
}
