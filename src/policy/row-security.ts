// Row-level security as the tenant fence (upstream.read_scope: rls, docs/read-scope.md): the policy each tenant-scoped table must hold, whether it holds, and the DDL that makes it.
//
// With the policy in place, a session's view of the table is a plain view (no security_barrier):
// PostgreSQL flattens it into the agent's query, so parameterised index paths reach the table
// from a join, while the policy's condition is a security qual of level 0 that runs before every
// condition of the agent that is not leakproof (the same ordering a security-barrier view gives,
// applied at the scan: PostgreSQL's order_qual_clauses sorts by security_level). The view keeps
// its own `tenant = <literal>` as well: the two meet in one equivalence class, so the planner
// estimates the tenant once, checks the setting against the literal once per statement, and a
// table whose policy was dropped still returns only the tenant's rows.
import type { TenantType } from './schema';
import type { CatalogRelation, CatalogSnapshot, ReadScope } from './scope';
import { parseStatements } from '../analysis/parser';

/** The setting that carries the principal's tenant into the policies: a startup parameter of each session, which no agent statement can set. */
export const TENANT_SETTING = 'ormai.tenant_id';
/**
 * Sets TENANT_SETTING for the rest of the transaction on one of the proxy's own connections (an
 * approved write, a rollback), as the principal's session has it at startup.
 */
export async function setTenantLocally(client: { query(text: string, values: unknown[]): Promise<unknown> }, tenant: string): Promise<void> {
  await client.query('SELECT set_config($1, $2, true)', [TENANT_SETTING, tenant]);
}

/** The name of the proxy's restrictive policy on each tenant-scoped table. */
export const TENANT_POLICY = 'ormai_tenant';
/** The permissive policy that keeps every role's rows where row-level security was off before. */
export const UNCHANGED_POLICY = 'ormai_unchanged';

/** The relation kinds row-level security applies to. */
const SECURABLE = new Set(['r', 'p']);

/** Always quoted: safe for every name (a keyword too); the check compares parse trees, where quoting leaves no trace. */
function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The tenant condition, with the casts pg_get_expr prints (so a reader can compare them by eye). */
export function tenantCondition(column: string, type: TenantType): string {
  const setting = `current_setting('${TENANT_SETTING}'::text)`;
  return type === 'text' ? `(${ident(column)} = ${setting})` : `(${ident(column)} = (${setting})::${type})`;
}

/** Two expressions PostgreSQL would parse to the same tree (positions aside). */
function sameExpression(a: string, b: string): boolean {
  const tree = (sql: string) => JSON.stringify(parseStatements(`SELECT ${sql}`), (key, value: unknown) => (key === 'location' ? undefined : value));
  try {
    return tree(a) === tree(b);
  } catch {
    return false;
  }
}

/** Does PostgreSQL apply the relation's row-level security (any policy of it) to the proxy's role? */
export function rowSecurityApplies(relation: CatalogRelation, catalog: CatalogSnapshot): boolean {
  const rls = relation.rowSecurity;
  return catalog.roleBypassesRowSecurity === undefined && rls !== undefined && rls.enabled && (!rls.owned || rls.forced);
}

/**
 * Why PostgreSQL's row-level security does not confine the proxy's role to the tenant of
 * `column` on `relation`, or undefined when it does: row-level security on (and forced, if the
 * role owns the table), a restrictive policy named TENANT_POLICY for all commands that applies
 * to the role, with exactly the tenant condition (and the same or no WITH CHECK).
 */
export function rowSecurityProblem(relation: CatalogRelation, column: string, type: TenantType, catalog: CatalogSnapshot): string | undefined {
  const what = `${relation.schema}.${relation.name}`;
  if (!SECURABLE.has(relation.kind)) return `${what} is not a table (row-level security applies to tables only)`;
  if (catalog.roleBypassesRowSecurity) return `the upstream role "${catalog.objects?.role ?? ''}" ${catalog.roleBypassesRowSecurity}, so row-level security never applies to it`;
  const rls = relation.rowSecurity;
  if (!rls?.enabled) return `${what} does not have row-level security enabled`;
  if (rls.owned && !rls.forced) return `the upstream role "${catalog.objects?.role ?? ''}" owns ${what}, which bypasses its row-level security (FORCE ROW LEVEL SECURITY, or a role of the proxy's own)`;
  const policy = rls.tenantPolicy;
  if (!policy) return `${what} has no policy ${TENANT_POLICY}`;
  if (!policy.restrictive || policy.command !== '*' || !policy.applies) return `the policy ${TENANT_POLICY} on ${what} is not AS RESTRICTIVE FOR ALL TO the upstream role`;
  const expected = tenantCondition(column, type);
  if (policy.qual === null || !sameExpression(policy.qual, expected)) return `the policy ${TENANT_POLICY} on ${what} reads USING ${policy.qual ?? '(none)'}, not ${expected}`;
  if (policy.withCheck !== null && !sameExpression(policy.withCheck, expected)) return `the policy ${TENANT_POLICY} on ${what} reads WITH CHECK ${policy.withCheck}, not ${expected}`;
  return undefined;
}

/** One table the DDL covers. */
export interface RowSecurityTarget {
  relation: CatalogRelation;
  column: string;
  type: TenantType;
}

/**
 * The DDL that makes the policies, for the table owner (or a superuser) to run. Idempotent: the
 * tenant policy is dropped and made again. Where row-level security was off, enabling it would
 * hide every row from every other role without a policy of its own, so a permissive policy for
 * PUBLIC keeps what each role saw; the restrictive one then narrows only the proxy's role.
 */
export function rowSecurityDdl(targets: readonly RowSecurityTarget[], role: string): string {
  const lines = [
    `-- Row-level security for OrmAI Proxy (upstream.read_scope: rls; docs/read-scope.md).`,
    `-- Run as the tables' owner or a superuser. The proxy logs in as ${ident(role)}; each of its sessions`,
    `-- carries the principal's tenant in the setting ${TENANT_SETTING}, which no agent statement can set.`,
    'BEGIN;',
  ];
  for (const { relation, column, type } of targets) {
    const table = `${ident(relation.schema)}.${ident(relation.name)}`;
    lines.push('', `-- ${relation.schema}.${relation.name}: rows of the principal's tenant only (${column}).`);
    if (!relation.rowSecurity?.enabled) {
      lines.push(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;`);
      lines.push(`DROP POLICY IF EXISTS ${UNCHANGED_POLICY} ON ${table};`);
      lines.push(`CREATE POLICY ${UNCHANGED_POLICY} ON ${table} AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);`);
    }
    if (relation.rowSecurity?.owned && !relation.rowSecurity.forced) {
      lines.push(`-- ${ident(role)} owns this table, and an owner bypasses row-level security unless it is forced.`);
      lines.push(`-- Forcing it confines every session of that role, the application's too: prefer a role of the proxy's own.`);
      lines.push(`ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;`);
    }
    const condition = tenantCondition(column, type);
    lines.push(`DROP POLICY IF EXISTS ${TENANT_POLICY} ON ${table};`);
    lines.push(`CREATE POLICY ${TENANT_POLICY} ON ${table} AS RESTRICTIVE FOR ALL TO ${ident(role)} USING ${condition} WITH CHECK ${condition};`);
  }
  lines.push('', 'COMMIT;', '');
  return lines.join('\n');
}

/**
 * The tables read_scope: rls fences with row-level security: every tenant-scoped table (or
 * partitioned table) of every policy whose model has no row filter (a row filter keeps its
 * security-barrier view). Throws when two policies scope one table by different columns or types:
 * one policy on the table cannot serve both.
 */
export function rowSecurityTargets(scopes: Iterable<ReadScope>): RowSecurityTarget[] {
  const targets = new Map<string, RowSecurityTarget>();
  for (const scope of scopes) {
    for (const [key, table] of scope.tables) {
      const relation = scope.catalog.relations.get(key);
      if (!relation || !table.tenantColumn || table.rowFilter || !SECURABLE.has(relation.kind)) continue;
      const type = scope.tenantType ?? 'integer';
      const known = targets.get(key);
      if (known && (known.column !== table.tenantColumn || known.type !== type)) {
        throw new Error(`${key} is scoped by ${known.column} (${known.type}) in one policy and by ${table.tenantColumn} (${type}) in another; row-level security can hold only one of them`);
      }
      targets.set(key, { relation, column: table.tenantColumn, type });
    }
  }
  return [...targets.values()];
}

/**
 * What stops read_scope: rls from fencing every target with row-level security, one line each;
 * empty when it does. Also a policy without a tenant scope that reads a fenced table: its
 * sessions would see one tenant's rows only (the setting carries the principal's tenant).
 */
export function rowSecurityProblems(scopes: readonly ReadScope[]): string[] {
  const problems: string[] = [];
  let targets: RowSecurityTarget[];
  try {
    targets = rowSecurityTargets(scopes);
  } catch (err) {
    return [(err as Error).message];
  }
  const catalog = scopes[0]?.catalog;
  if (!catalog) return problems;
  for (const t of targets) {
    const problem = rowSecurityProblem(t.relation, t.column, t.type, catalog);
    if (problem) problems.push(problem);
  }
  const fenced = new Set(targets.map((t) => `${t.relation.schema}.${t.relation.name}`));
  for (const scope of scopes) {
    if (scope.tenantType !== undefined || scope.policy.raw.tenant_scope) continue;
    for (const key of scope.tables.keys()) {
      if (fenced.has(key)) problems.push(`policy ${scope.policy.name} has no tenant scope, but reads ${key}, whose row-level security gives the proxy's role one tenant's rows`);
    }
  }
  return problems;
}
