// Reads the live catalog from the upstream database (relations, and columns of registered tables).
import net from 'node:net';
import { Client, type ClientConfig } from 'pg';
import { REG_TYPES } from '../analysis/function-allowlist';
import type { UpstreamTarget } from '../config/load';
import type { PolicySnapshot } from '../policy/load';
import type { CatalogRelation, CatalogSnapshot, RowSecurityFacts } from '../policy/scope';
import { SERVED_SYSTEM_RELATIONS } from '../analysis/rewrite/catalog-views';
import { loadCatalogObjects } from './catalog-objects';
import { TENANT_POLICY } from '../policy/row-security';

const TYPES = `
  SELECT t.oid::int8 AS oid, t.typname AS name, t.typtype::text AS typtype, e.typtype::text AS elem_typtype, e.typname AS elem_name
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
   WHERE n.nspname = 'pg_catalog'`;

/** Operator names of the search_path's schemas that pg_catalog does not have (CatalogSnapshot.userOperators). */
const USER_OPERATORS = `
  SELECT DISTINCT o.oprname AS name, fn.nspname AS function_schema, p.proname AS function_name
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
    JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace fn ON fn.oid = p.pronamespace
   WHERE n.nspname = ANY($1::text[]) AND n.nspname <> 'pg_catalog'
     AND (NOT EXISTS (SELECT 1 FROM pg_operator b WHERE b.oprname = o.oprname AND b.oprnamespace = 'pg_catalog'::regnamespace)
          OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e'))`;

const BUILTIN_OPERATORS = `SELECT DISTINCT oprname AS name FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace`;

/** Functions with a volatile overload, by schema and name (CatalogSnapshot.volatileFunctions). */
const VOLATILE_FUNCTIONS = `
  SELECT DISTINCT n.nspname AS schema, p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE p.provolatile = 'v' AND p.prokind IN ('f', 'w', 'a')`;

/** Functions of the search_path's schemas that are no extension's (CatalogSnapshot.userFunctions). */
const USER_FUNCTIONS = `
  SELECT DISTINCT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = ANY($1::text[]) AND n.nspname <> 'pg_catalog'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`;

/** Base, enum, range and multirange types (and arrays of them), minus the reg* family; `unknown` is what drivers send for untyped text. */
function parameterType(row: { name: string; typtype: string; elem_typtype: string | null; elem_name: string | null }): boolean {
  if (row.name === 'unknown') return true;
  const [typtype, name] = row.elem_typtype ? [row.elem_typtype, row.elem_name ?? ''] : [row.typtype, row.name];
  return ['b', 'e', 'r', 'm'].includes(typtype) && !REG_TYPES.has(name);
}

/** A pg client configuration for the proxy's own connections (catalog, planner, audit). */
export function adminClientConfig(target: UpstreamTarget, applicationName: string): ClientConfig {
  const ssl =
    target.tls.mode === 'disable'
      ? false
      : target.tls.mode === 'require'
        ? { rejectUnauthorized: false }
        : { rejectUnauthorized: true, ca: target.tls.ca, servername: net.isIP(target.host) ? undefined : target.host };
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    ssl,
    application_name: applicationName,
    connectionTimeoutMillis: target.connectTimeoutMs,
    options: `-c search_path=${target.searchPath}`,
  };
}

/**
 * A client of the proxy's own (catalog loads, start-up checks, approved writes, rollbacks, the
 * policy tooling). Its errors reach the pending query; one that arrives between queries (the
 * connection lost while the caller awaits something else) must not be an unhandled 'error'
 * event, which would end the process.
 */
export function adminClient(target: UpstreamTarget, applicationName: string): Client {
  const client = new Client(adminClientConfig(target, applicationName));
  client.on('error', () => undefined);
  return client;
}

const RELATIONS = `
  SELECT n.nspname AS schema, c.relname AS name, c.oid::int8 AS oid, c.relkind AS kind, c.reltuples::float8 AS reltuples
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'pg_toast' AND n.nspname NOT LIKE 'pg_temp_%'`;

const COLUMNS = `
  SELECT c.oid::int8 AS oid, a.attname AS name, a.attnum::int AS attnum, format_type(a.atttypid, a.atttypmod) AS type,
         a.atttypid::int8 AS type_oid, a.attnotnull AS not_null,
         (a.attidentity <> '' OR a.attgenerated <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)) AS generated,
         a.attidentity::text AS identity, a.attgenerated::text AS generated_kind, tn.nspname AS udt_schema, t.typname AS udt_name,
         a.attcollation NOT IN (0, 100, 950) AS collated, a.atthasdef AS has_default,
         CASE WHEN a.attgenerated <> '' THEN
           (SELECT array_agg(ra.attname::text ORDER BY ra.attnum) FROM pg_depend dep
              JOIN pg_attribute ra ON ra.attrelid = dep.refobjid AND ra.attnum = dep.refobjsubid
             WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
               AND dep.refobjid = a.attrelid AND dep.refobjsubid > 0 AND dep.refobjsubid <> a.attnum)
         END AS generated_from
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
  JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.oid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  ORDER BY c.oid, a.attnum`;

/**
 * Column types of the registered tables (through domains and arrays) whose leakproof comparisons
 * may raise: a composite type (its fields may carry a collation of their own), a geometric type
 * (circle and lseg comparisons compute areas and lengths, which overflow), or a domain with a
 * collation other than the default and "C". See rewrite/collations.ts.
 */
const RAISING = (seed: string) => `
  WITH RECURSIVE chain(root, t) AS (
    ${seed}
    UNION
    SELECT c.root, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END
      FROM chain c JOIN pg_type ty ON ty.oid = c.t
     WHERE (ty.typtype = 'd' AND ty.typbasetype <> 0) OR (ty.typcategory = 'A' AND ty.typelem <> 0)
  )
  SELECT DISTINCT c.root FROM chain c JOIN pg_type ty ON ty.oid = c.t
   WHERE ty.typtype = 'c' OR ty.typcollation NOT IN (0, 100, 950)
      OR (ty.typnamespace = 'pg_catalog'::regnamespace AND ty.typname IN ('point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle'))`;

const RAISING_TYPES = `SELECT root::int8 AS oid FROM (${RAISING(`
    SELECT DISTINCT a.atttypid, a.atttypid FROM pg_attribute a
     WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`)}) r`;

/**
 * Functions outside pg_catalog whose result (its type, or an OUT parameter's) is of such a type:
 * called in a sub-select, one puts a collation (or a composite's fields) of the DBA's choosing
 * next to the agent's leakproof comparisons, where no COLLATE clause shows it
 * (CatalogSnapshot.raisingFunctions).
 */
const RAISING_FUNCTIONS = `
  SELECT DISTINCT n.nspname AS schema, p.proname AS name
    FROM (${RAISING(`
    SELECT p.oid, x.t FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     CROSS JOIN LATERAL (SELECT p.prorettype UNION ALL
                         SELECT a.t FROM unnest(p.proallargtypes, p.proargmodes) AS a(t, m) WHERE a.m IN ('o', 'b', 't')) AS x(t)
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`)}) r
    JOIN pg_proc p ON p.oid = r.root JOIN pg_namespace n ON n.oid = p.pronamespace`;

const PRIMARY_KEYS = `
  SELECT i.indrelid::int8 AS oid, array_agg(a.attname::text ORDER BY k.ord) AS columns
  FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indisprimary AND i.indrelid = ANY($1::oid[])
  GROUP BY i.indrelid`;

const FOREIGN_KEYS = `
  SELECT c.conrelid::int8 AS oid, a.attname::text AS column, n.nspname AS parent_schema, p.relname AS parent, pa.attname::text AS parent_column
  FROM pg_constraint c
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
  JOIN pg_class p ON p.oid = c.confrelid JOIN pg_namespace n ON n.oid = p.relnamespace
  JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
  WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.conrelid = ANY($1::oid[])`;

/**
 * Row-level security of the registered tables as it applies to the proxy's role (policy/row-security.ts
 * judges it): enabled, forced, whether the role has the owner's privileges (and so bypasses it
 * unless forced), and the proxy's own tenant policy. PostgreSQL applies a policy to a role that
 * is in its TO list (0: PUBLIC) or a member of one (pg_has_role … 'USAGE', as check_enable_rls
 * and the policy matching do).
 */
const ROW_SECURITY = `
  SELECT c.oid::int8 AS oid, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
         pg_has_role(current_user, c.relowner, 'USAGE') AS owned,
         p.polname IS NOT NULL AS has_policy, NOT p.polpermissive AS restrictive, p.polcmd::text AS command,
         EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE r = 0 OR pg_has_role(current_user, r, 'USAGE')) AS applies,
         pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
  FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = $2
  WHERE c.oid = ANY($1::oid[])`;

const ROLE = `SELECT rolsuper AS superuser, rolbypassrls AS bypassrls FROM pg_roles WHERE rolname = current_user`;

/** What row-level security is for the proxy's role: per relation (by oid), and whether the role bypasses it. */
export interface RowSecurityState {
  tables: Map<number, RowSecurityFacts>;
  roleBypassesRowSecurity?: string;
}

async function readRowSecurity(client: Client, oids: number[]): Promise<RowSecurityState> {
  type RlsRow = { oid: string; enabled: boolean; forced: boolean; owned: boolean; has_policy: boolean; restrictive: boolean; command: string; applies: boolean; qual: string | null; with_check: string | null };
  const tables = new Map<number, RowSecurityFacts>();
  for (const row of (await client.query(ROW_SECURITY, [oids, TENANT_POLICY])).rows as RlsRow[]) {
    tables.set(Number(row.oid), {
      enabled: row.enabled,
      forced: row.forced,
      owned: row.owned,
      ...(row.has_policy ? { tenantPolicy: { restrictive: row.restrictive, command: row.command, applies: row.applies, qual: row.qual, withCheck: row.with_check } } : {}),
    });
  }
  const role = (await client.query(ROLE)).rows[0] as { superuser: boolean; bypassrls: boolean } | undefined;
  const roleBypassesRowSecurity = !role ? 'is not in pg_roles' : role.superuser ? 'is a superuser' : role.bypassrls ? 'has BYPASSRLS' : undefined;
  return { tables, ...(roleBypassesRowSecurity ? { roleBypassesRowSecurity } : {}) };
}

/** Row-level security of these relations now, on a connection of its own (the check between catalog loads: policy/provider.ts). */
export async function loadRowSecurity(target: UpstreamTarget, oids: number[]): Promise<RowSecurityState> {
  const client = adminClient(target, 'ormai-proxy catalog');
  await client.connect();
  try {
    return await readRowSecurity(client, oids);
  } finally {
    await client.end();
  }
}

/** Loads what the policies need to resolve names and build derived tables. */
export async function loadCatalog(target: UpstreamTarget, policies: readonly PolicySnapshot[]): Promise<CatalogSnapshot> {
  const client = adminClient(target, 'ormai-proxy catalog');
  await client.connect();
  try {
    const relations = new Map<string, CatalogRelation>();
    const byOid = new Map<number, CatalogRelation>();
    for (const row of (await client.query(RELATIONS)).rows as Array<{ schema: string; name: string; oid: string; kind: string; reltuples: number }>) {
      const rel: CatalogRelation = { schema: row.schema, name: row.name, oid: Number(row.oid), kind: row.kind, rowEstimate: row.reltuples, columns: [] };
      relations.set(`${rel.schema}.${rel.name}`, rel);
      byOid.set(rel.oid, rel);
    }
    const searchPath = target.searchPath
      .split(',')
      .map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
      .filter((s) => s.length > 0 && s !== '$user');
    const wanted = new Set<number>();
    for (const policy of policies) {
      for (const model of policy.models) {
        const schemas = model.schema ? [model.schema] : searchPath;
        for (const s of schemas) {
          const rel = relations.get(`${s}.${model.table}`);
          if (rel) {
            wanted.add(rel.oid);
            break;
          }
        }
      }
    }
    const cols = await client.query(COLUMNS, [[...wanted]]);
    const raising = new Set(((await client.query(RAISING_TYPES, [[...wanted]])).rows as Array<{ oid: string }>).map((r) => Number(r.oid)));
    type ColumnRow = { oid: string; name: string; attnum: number; type: string; type_oid: string; not_null: boolean; generated: boolean; identity: string; generated_kind: string; udt_schema: string; udt_name: string; collated: boolean; has_default: boolean; generated_from: string[] | null };
    for (const row of cols.rows as ColumnRow[]) {
      byOid.get(Number(row.oid))?.columns.push({
        name: row.name,
        attnum: row.attnum,
        type: row.type,
        typeOid: Number(row.type_oid),
        notNull: row.not_null,
        ...(row.generated ? { generated: true } : {}),
        udtSchema: row.udt_schema,
        udtName: row.udt_name,
        ...(row.identity === 'a' || row.identity === 'd' ? { identity: row.identity } : {}),
        ...(row.generated_kind === 's' ? { stored: true } : {}),
        ...(row.collated || raising.has(Number(row.type_oid)) ? { comparisonsMayRaise: true } : {}),
        ...(row.generated_from ? { generatedFrom: row.generated_from } : {}),
        ...(row.has_default ? { hasDefault: true } : {}),
      });
    }
    for (const row of (await client.query(FOREIGN_KEYS, [[...wanted]])).rows as Array<{ oid: string; column: string; parent_schema: string; parent: string; parent_column: string }>) {
      const rel = byOid.get(Number(row.oid));
      if (rel) (rel.foreignKeys ??= []).push({ column: row.column, parent: `${row.parent_schema}.${row.parent}`, parentColumn: row.parent_column });
    }
    for (const row of (await client.query(PRIMARY_KEYS, [[...wanted]])).rows as Array<{ oid: string; columns: string[] }>) {
      const rel = byOid.get(Number(row.oid));
      if (rel) rel.primaryKey = row.columns;
    }
    const typeRows = (await client.query(TYPES)).rows as Array<{ oid: string; name: string; typtype: string; elem_typtype: string | null; elem_name: string | null }>;
    // The type names a statement may name: not the row types of the system catalogs (and their
    // arrays), whose fields include reg* and aclitem values: a record of pg_sequences or pg_class
    // built from the agent's text would look names up in every schema, hidden ones included.
    const types = new Set(typeRows.filter((r) => r.typtype !== 'c' && r.elem_typtype !== 'c').map((r) => r.name));
    const parameterTypes = new Set(typeRows.filter(parameterType).map((r) => Number(r.oid)));
    const parameterTypeNames = new Map(typeRows.filter(parameterType).map((r) => [r.name, Number(r.oid)]));
    const security = await readRowSecurity(client, [...wanted]);
    for (const [oid, facts] of security.tables) {
      const rel = byOid.get(oid);
      if (rel) rel.rowSecurity = facts;
    }
    const { roleBypassesRowSecurity } = security;
    const userOperators = new Map<string, Array<[schema: string, name: string]>>();
    for (const r of (await client.query(USER_OPERATORS, [searchPath])).rows as Array<{ name: string; function_schema: string; function_name: string }>) {
      const list = userOperators.get(r.name) ?? [];
      list.push([r.function_schema, r.function_name]);
      userOperators.set(r.name, list);
    }
    const objects = await loadCatalogObjects(client, [...wanted], SERVED_SYSTEM_RELATIONS);
    return {
      database: target.database,
      searchPath,
      relations,
      types,
      parameterTypes,
      parameterTypeNames,
      objects,
      ...(userOperators.size ? { userOperators } : {}),
      builtinOperators: new Set(((await client.query(BUILTIN_OPERATORS)).rows as Array<{ name: string }>).map((r) => r.name)),
      userFunctions: new Set(((await client.query(USER_FUNCTIONS, [searchPath])).rows as Array<{ name: string }>).map((r) => r.name)),
      raisingFunctions: functionKeys((await client.query(RAISING_FUNCTIONS)).rows as Array<{ schema: string; name: string }>, searchPath),
      volatileFunctions: functionKeys((await client.query(VOLATILE_FUNCTIONS)).rows as Array<{ schema: string; name: string }>, searchPath),
      ...(roleBypassesRowSecurity ? { roleBypassesRowSecurity } : {}),
      serverVersionNum: Number(((await client.query("SELECT current_setting('server_version_num') AS v")).rows[0] as { v: string }).v),
    };
  } finally {
    await client.end();
  }
}

/**
 * `schema.name` of each function, and its name alone where its schema is pg_catalog or on the
 * search path (an unqualified call may resolve to it).
 */
function functionKeys(rows: ReadonlyArray<{ schema: string; name: string }>, searchPath: readonly string[]): ReadonlySet<string> {
  const out = new Set<string>();
  for (const { schema, name } of rows) {
    out.add(`${schema}.${name}`);
    if (schema === 'pg_catalog' || searchPath.includes(schema)) out.add(name);
  }
  return out;
}
