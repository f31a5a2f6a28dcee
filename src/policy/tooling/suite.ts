// `ormai-proxy test`: runs a policy regression suite through an in-process proxy against the real database.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startProxy, type RunningProxy } from '../../app';
import { loadUsersFile } from '../../auth/users';
import { loadConfig, type ProxyConfig } from '../../config/load';
import { createLogger, silentLogger } from '../../log';
import { adminClient } from '../../upstream/catalog';
import { credentialsFor, loadCaseFile, protocolsOf, type CaseFile, type Credentials } from './case-file';
import { compareOutcome, runStatement, type ProxyTarget } from './outcome';

export const TEST_USAGE = `Usage: ormai-proxy test --config FILE [--verbose] [--audit-file FILE] CASES.yaml
  Starts the proxy in this process (on 127.0.0.1, free ports) in front of the configured
  upstream database, runs each case of CASES.yaml as its principal with node-postgres, and
  compares what the proxy did with what the case expects. The case file's setup and
  teardown SQL run directly against the database with the upstream credentials.
  --verbose  the proxy's own log on stderr, at the config's log_level
  --audit-file FILE
             where the audit events of a stdout audit sink go (default: a temporary
             file, removed after the run); other sinks are used as configured
  Exit: 0 every case passed, 1 a case failed (or the database could not be used), 2 usage error.
`;

/** Exit 2: the invocation or the files are wrong; `usage` adds the usage text (wrong arguments, not wrong files). */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = false,
  ) {
    super(message);
  }
}

interface Prepared {
  config: ProxyConfig;
  suite: CaseFile;
  logins: Credentials[];
}

/** Everything that can be wrong with the invocation or the files, found before anything runs. */
function prepare(configFile: string, casesFile: string): Prepared {
  let config: ProxyConfig;
  try {
    // The suite's proxy never takes the configured ports: a real proxy may be running on them.
    config = loadConfig(configFile, { ...process.env, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let suite: CaseFile;
  let logins: Credentials[];
  try {
    suite = loadCaseFile(casesFile);
    logins = suite.cases.map((c) => credentialsFor(suite, c));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { users_file: usersFile, jwt } = config.raw.auth;
  // With a JWT verifier any name may log in; with a users file only, an unknown name is a typo in the case file.
  if (usersFile && jwt === undefined) {
    const users = loadUsersFile(path.resolve(config.dir, usersFile));
    const unknown = [...new Set(logins.map((l) => l.user))].filter((u) => !users.has(u));
    if (unknown.length) throw new UsageError(`${casesFile}: not in the users file ${usersFile}: ${unknown.join(', ')}`);
  }
  return { config, suite, logins };
}

/**
 * The suite reports on stdout, where a stdout audit sink would interleave its JSON events with
 * the report: the suite's proxy writes that sink's events to a hash-chained file instead, so
 * writes still wait for a durable event as they do in production.
 */
function auditAwayFromStdout(config: ProxyConfig, file: string): ProxyConfig {
  const sinks = config.raw.audit.sinks.map((s) => (s.type === 'stdout' ? { type: 'file' as const, path: path.resolve(file) } : s));
  return { ...config, raw: { ...config.raw, audit: { ...config.raw.audit, sinks } } };
}

/** Runs setup or teardown SQL with the proxy's upstream credentials (the simple protocol: several statements allowed). */
async function runDirect(config: ProxyConfig, sql: string | undefined): Promise<void> {
  const client = adminClient(config.upstream, 'ormai-proxy test setup');
  await client.connect();
  try {
    if (sql) await client.query(sql);
  } finally {
    await client.end();
  }
}

async function runCases(proxy: RunningProxy, prepared: Prepared, write: (line: string) => void): Promise<number> {
  const { config, suite, logins } = prepared;
  const target: ProxyTarget = { host: proxy.host, port: proxy.port, database: suite.database ?? config.database, tls: config.tls !== undefined };
  let failed = 0;
  for (const [i, c] of suite.cases.entries()) {
    const diffs: string[] = [];
    const protocols = protocolsOf(c);
    for (const protocol of protocols) {
      const outcome = await runStatement(target, logins[i], { sql: c.sql, params: c.params, protocol, timeoutMs: suite.timeout_ms });
      const diff = compareOutcome(c, outcome);
      if (diff) diffs.push(protocols.length > 1 ? `[${protocol}] ${diff}` : diff);
    }
    if (diffs.length) failed++;
    write(diffs.length ? `FAIL ${c.name}: ${diffs.join('; ')}` : `ok   ${c.name}`);
  }
  return failed;
}

/** Starts the suite's proxy (throws when it cannot), runs every case, stops it; the number of failed cases. */
async function runThroughProxy(prepared: Prepared, opts: { verbose: boolean; auditFile?: string }, out: (line: string) => void): Promise<number> {
  const { config } = prepared;
  const tmp = opts.auditFile === undefined ? mkdtempSync(path.join(os.tmpdir(), 'ormai-test-')) : undefined;
  try {
    const audited = auditAwayFromStdout(config, opts.auditFile ?? path.join(tmp!, 'audit.jsonl'));
    const proxy = await startProxy(audited, opts.verbose ? createLogger(config.raw.log_level) : silentLogger);
    try {
      return await runCases(proxy, prepared, out);
    } finally {
      // Drains the audit trail before its file goes.
      await proxy.close();
    }
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

export async function runTestCommand(args: string[]): Promise<number> {
  const err = (line: string) => process.stderr.write(`ormai-proxy test: ${line}\n`);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let prepared: Prepared;
  let verbose = false;
  let auditFile: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        verbose: { type: 'boolean', short: 'v' },
        'audit-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(TEST_USAGE);
      return 0;
    }
    if (!values.config || positionals.length !== 1) throw new UsageError('needs --config FILE and exactly one CASES.yaml', true);
    verbose = values.verbose === true;
    auditFile = values['audit-file'];
    prepared = prepare(values.config, positionals[0]);
  } catch (e) {
    // parseArgs throws a TypeError for an unknown flag: an argument problem, so the usage helps.
    const usage = !(e instanceof UsageError) || e.usage;
    err(`${(e as Error).message}${usage ? `\n${TEST_USAGE}` : ''}`);
    return 2;
  }
  const { config, suite } = prepared;
  try {
    await runDirect(config, suite.setup);
  } catch (e) {
    err(`${suite.setup ? 'setup failed' : 'database not reachable'}: ${(e as Error).message}`);
    return 1;
  }
  let failed: number | undefined;
  try {
    failed = await runThroughProxy(prepared, { verbose, auditFile }, out);
  } catch (e) {
    err(`the proxy failed: ${(e as Error).message}`);
  }
  let teardownFailed = false;
  if (suite.teardown) {
    try {
      await runDirect(config, suite.teardown);
    } catch (e) {
      teardownFailed = true;
      err(`teardown failed: ${(e as Error).message}`);
    }
  }
  if (failed === undefined) return 1;
  const total = suite.cases.length;
  out(`${total} case${total === 1 ? '' : 's'}: ${total - failed} passed, ${failed} failed`);
  return failed > 0 || teardownFailed ? 1 : 0;
}
