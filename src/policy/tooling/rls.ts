// `ormai-proxy rls`: prints the row-level security DDL that upstream.read_scope: rls needs, from the policies and the live schema.
import { initAnalysis } from '../../analysis/parser';
import { parseCommand } from '../../cli-args';
import { loadConfig, type ProxyConfig } from '../../config/load';
import { loadCatalog } from '../../upstream/catalog';
import { rowSecurityDdl, rowSecurityProblem, rowSecurityTargets } from '../row-security';
import { compileScope } from '../scope';

export const RLS_USAGE = `Usage: ormai-proxy rls --config FILE [--role NAME]
  Prints, on stdout, the SQL that fences each tenant-scoped table of the policies with
  PostgreSQL's row-level security for the proxy's upstream role (upstream.read_scope: rls;
  docs/read-scope.md). Run it as the tables' owner or a superuser; it is idempotent.
  On stderr: the tables already in order, and what the SQL cannot fix.
  --role NAME   the role the policies confine (default: the role the proxy logs in as)
  Exit: 0 printed, 1 the role can never be confined (a superuser, BYPASSRLS) or the
  policies disagree on a table's tenant column, 2 usage error.
`;

export interface RowSecurityScript {
  /** The DDL, for every target table (already fenced ones included: it is idempotent). */
  sql: string;
  /** The role the policies name. */
  role: string;
  /** Tables whose row-level security is already as the proxy needs it. */
  inPlace: string[];
  /** What the DDL cannot fix (the role bypasses row-level security). */
  blocking?: string;
}

/** The DDL for `config`'s policies, read against the live schema. */
export async function rowSecurityScript(config: ProxyConfig, role?: string): Promise<RowSecurityScript> {
  await initAnalysis();
  const catalog = await loadCatalog(config.upstream, config.policies);
  const scopes = config.policies.map((p) => compileScope(p, catalog));
  const targets = rowSecurityTargets(scopes);
  const name = role ?? catalog.objects?.role ?? config.upstream.user;
  const inPlace = role === undefined ? targets.filter((t) => rowSecurityProblem(t.relation, t.column, t.type, catalog) === undefined).map((t) => `${t.relation.schema}.${t.relation.name}`) : [];
  return {
    sql: rowSecurityDdl(targets, name),
    role: name,
    inPlace,
    ...(role === undefined && catalog.roleBypassesRowSecurity ? { blocking: `the upstream role "${name}" ${catalog.roleBypassesRowSecurity}: row-level security never applies to it; give the proxy a role of its own` } : {}),
  };
}

export async function rlsCommand(args: string[]): Promise<number> {
  const parsed = parseCommand(args, { config: { type: 'string', short: 'c' }, role: { type: 'string' } }, RLS_USAGE, process.stdout, process.stderr);
  if ('exit' in parsed) return parsed.exit;
  if (!parsed.values.config || parsed.positionals.length > 0) {
    process.stderr.write(RLS_USAGE);
    return 2;
  }
  const config = loadConfig(parsed.values.config);
  let script: RowSecurityScript;
  try {
    script = await rowSecurityScript(config, parsed.values.role);
  } catch (err) {
    process.stderr.write(`ormai-proxy rls: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(script.sql);
  if (script.inPlace.length > 0) process.stderr.write(`already in place: ${script.inPlace.join(', ')}\n`);
  if (script.blocking) {
    process.stderr.write(`ormai-proxy rls: ${script.blocking}\n`);
    return 1;
  }
  return 0;
}
