// `ormai-proxy check`: validates the config, policy and other start-up files, then lints each policy (against the live schema when the database answers).
import { checkStartupFiles } from '../../app';
import { initAnalysis } from '../../analysis/parser';
import { parseArgs } from 'node:util';
import type { DatabaseError } from 'pg';
import { loadConfig, type ProxyConfig } from '../../config/load';
import { adminClient, loadCatalog } from '../../upstream/catalog';
import { compileScope, PolicyCatalogError, type CatalogSnapshot, type ReadScope } from '../scope';
import { domainPrepareFindings, type Preparer } from './domain-lint';
import { applyStrict, countFindings, formatCounts, formatFinding, sortFindings, type Finding } from './findings';
import { lintPolicy } from './lint-rules';

export const CHECK_USAGE = `Usage: ormai-proxy check --config FILE [--strict] [--json]
  Validates the configuration and policy files and every file start-up reads (users, JWT keys,
  admin token and identities, audit key), prints each policy's hash, and lints the policies;
  with the upstream database reachable, against its live schema.
  --strict   warnings count as errors
  --json     one JSON document on stdout instead of text
  Exit: 0 valid (warnings and info only), 1 invalid files or lint errors, 2 usage error.
`;

/**
 * Relations that have one of these columns, beyond what loadCatalog loads (it reads columns of
 * registered relations only). Partitions are left out: they are reached through their parent.
 */
const TENANT_COLUMN_OWNERS = `
  SELECT n.nspname AS schema, c.relname AS name, a.attname AS column, a.attnum::int AS attnum,
         format_type(a.atttypid, a.atttypmod) AS type, a.atttypid::int8 AS type_oid, a.attnotnull AS not_null
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition AND a.attname = ANY($1::text[])
     AND a.attnum > 0 AND NOT a.attisdropped
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;

/** The proxy's catalog, plus the tenant columns of relations no policy registers. */
export async function loadLintCatalog(config: ProxyConfig): Promise<CatalogSnapshot> {
  const catalog = await loadCatalog(config.upstream, config.policies);
  const columns = [...new Set(config.policies.flatMap((p) => (p.raw.tenant_scope ? [p.raw.tenant_scope.column.toLowerCase()] : [])))];
  if (columns.length === 0) return catalog;
  const client = adminClient(config.upstream, 'ormai-proxy check');
  await client.connect();
  try {
    const rows = (await client.query(TENANT_COLUMN_OWNERS, [columns])).rows as Array<{ schema: string; name: string; column: string; attnum: number; type: string; type_oid: string; not_null: boolean }>;
    for (const row of rows) {
      const rel = catalog.relations.get(`${row.schema}.${row.name}`);
      // Registered relations already carry every column.
      if (!rel || rel.columns.some((c) => c.name === row.column)) continue;
      rel.columns.push({ name: row.column, attnum: row.attnum, type: row.type, typeOid: Number(row.type_oid), notNull: row.not_null });
    }
  } finally {
    await client.end();
  }
  return catalog;
}

/** Tables the proxy creates for itself (approvals, audit); they carry a tenant column but are not the agents' business. */
function ownTables(config: ProxyConfig): Set<string> {
  const qualified = (t: string) => (t.includes('.') ? t.toLowerCase() : `public.${t.toLowerCase()}`);
  const own = new Set<string>();
  if (config.raw.approvals.store === 'postgres') own.add(qualified(config.raw.approvals.table));
  for (const sink of config.raw.audit.sinks) if (sink.type === 'postgres') own.add(qualified(sink.table));
  return own;
}

export interface CheckResult {
  findings: Finding[];
  /** Why the live-schema rules did not run; absent when they did. */
  skipped?: string;
}

/**
 * PostgreSQL's own check of a statement without running it: PREPARE resolves every table,
 * column and type (parse analysis) and executes nothing; it runs in a read-only transaction that
 * is rolled back, and the statement is deallocated at once.
 */
async function withUpstreamPreparer<T>(config: ProxyConfig, body: (prepare: Preparer) => Promise<T>): Promise<T> {
  const client = adminClient(config.upstream, 'ormai-proxy check');
  await client.connect();
  try {
    return await body(async (sql) => {
      await client.query('BEGIN READ ONLY');
      try {
        await client.query(`PREPARE ormai_check_tool AS ${sql}`);
        await client.query('DEALLOCATE ormai_check_tool');
        return undefined;
      } catch (err) {
        const e = err as DatabaseError;
        return `${typeof e.code === 'string' ? `${e.code}: ` : ''}${e.message}`;
      } finally {
        await client.query('ROLLBACK');
      }
    });
  } finally {
    await client.end();
  }
}

/** Domain tools whose statements pass the analysis, prepared upstream (domain-lint.ts). */
async function domainPrepareAll(config: ProxyConfig, catalog: CatalogSnapshot): Promise<Finding[]> {
  const policies = config.policies.filter((p) => p.raw.tools.length > 0);
  if (policies.length === 0) return [];
  return withUpstreamPreparer(config, async (prepare) => {
    const out: Finding[] = [];
    for (const policy of policies) {
      let scope: ReadScope;
      try {
        scope = compileScope(policy, catalog);
      } catch (err) {
        if (err instanceof PolicyCatalogError) continue; // catalog_mismatch already says why
        throw err;
      }
      out.push(...(await domainPrepareFindings(policy, scope, prepare)));
    }
    return out;
  });
}

export async function lintConfig(config: ProxyConfig, strict: boolean, catalogLoader = loadLintCatalog, upstreamPrepare = domainPrepareAll): Promise<CheckResult> {
  // Row filters and domain tools are checked with PostgreSQL's parser (policy/scope.ts, domain-lint.ts).
  await initAnalysis();
  let catalog: CatalogSnapshot | undefined;
  let skipped: string | undefined;
  try {
    catalog = await catalogLoader(config);
  } catch (err) {
    skipped = (err as Error).message || String(err);
  }
  const findings = config.policies.flatMap((p) => lintPolicy(p, catalog, { ownTables: ownTables(config) }));
  if (catalog) findings.push(...(await upstreamPrepare(config, catalog)));
  const sorted = sortFindings(applyStrict(findings, strict), config.policies.map((p) => p.name));
  return { findings: sorted, ...(skipped !== undefined ? { skipped } : {}) };
}

export async function runCheckCommand(args: string[]): Promise<number> {
  let values: { config?: string; strict?: boolean; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { config: { type: 'string', short: 'c' }, strict: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`ormai-proxy check: ${(err as Error).message}\n${CHECK_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(CHECK_USAGE);
    return 0;
  }
  if (!values.config) {
    process.stderr.write(`ormai-proxy check: --config FILE is required\n${CHECK_USAGE}`);
    return 2;
  }
  let config: ProxyConfig;
  try {
    config = loadConfig(values.config);
    await checkStartupFiles(config);
  } catch (err) {
    if (values.json) process.stdout.write(JSON.stringify({ config: values.config, valid: false, error: (err as Error).message, exit_code: 1 }, null, 2) + '\n');
    else process.stderr.write(`ormai-proxy: ${(err as Error).message}\n`);
    return 1;
  }
  const { findings, skipped } = await lintConfig(config, values.strict === true);
  const counts = countFindings(findings);
  const exitCode = counts.errors > 0 ? 1 : 0;
  const { host, port, database } = config.upstream;
  if (values.json) {
    const doc = {
      config: config.file,
      valid: true,
      policies: config.policies.map((p) => ({ name: p.name, file: p.file, hash: p.hash })),
      database: { host, port, database, linted: skipped === undefined, ...(skipped !== undefined ? { error: skipped } : {}) },
      strict: values.strict === true,
      findings,
      counts,
      exit_code: exitCode,
    };
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    return exitCode;
  }
  const out = [`ok: ${config.file}`, ...config.policies.map((p) => `  policy ${p.name} (${p.file}) sha256:${p.hash}`)];
  out.push(
    skipped === undefined
      ? `lint: against database ${database} on ${host}:${port}`
      : `lint: database ${database} on ${host}:${port} not reachable (${skipped}); only the rules that need no database ran`,
  );
  out.push(...findings.map(formatFinding));
  out.push(`lint: ${formatCounts(counts)}${values.strict ? ' (--strict: warnings count as errors)' : ''}`);
  process.stdout.write(out.join('\n') + '\n');
  return exitCode;
}
