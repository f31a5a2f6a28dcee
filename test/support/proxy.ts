// Starts a real proxy in-process on a free port, configured from the quickstart files.
import path from 'node:path';
import { startProxy, type RunningProxy } from '../../src/app';
import { loadConfig, resolveConfig } from '../../src/config/load';
import { createLogger, silentLogger } from '../../src/log';
import { parseStructuredFile } from '../../src/policy/load';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import type { AuditEvent } from '../../src/audit/event';
import { applyRowSecurity, prepareRowSecurityRole, releaseRowSecurityRole } from './row-security';

export const QUICKSTART = path.resolve(__dirname, '..', '..', 'config', 'quickstart', 'ormai.yaml');

export interface TestProxy extends RunningProxy {
  /** The hash-chained audit file this proxy writes (unless the overrides configure other sinks). */
  auditFile: string;
  /** The events in the audit file so far. */
  auditEvents(): AuditEvent[];
  /** Connection URL for a quickstart user through the proxy. */
  url(user?: string, password?: string, database?: string): string;
}

/** `overrides` are merged over the quickstart ormai.yaml (top-level keys replace). */
export async function startTestProxy(upstreamUrl: string, overrides: Record<string, unknown> = {}): Promise<TestProxy> {
  // Audit events go to a file of this proxy's own (not stdout, where they would fill the test output).
  const auditDir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-'));
  const auditFile = path.join(auditDir, 'audit.jsonl');
  // ORMAI_TEST_READ_SCOPE=fence (or rls) runs a suite with that read scope (CI runs the adversarial suites in each).
  const readScope = process.env.ORMAI_TEST_READ_SCOPE;
  const doc = {
    ...(parseStructuredFile(readFileSync(QUICKSTART, 'utf8'), QUICKSTART) as object),
    audit: { sinks: [{ type: 'file', path: auditFile }] },
    ...(readScope ? { upstream: { read_scope: readScope } } : {}),
    ...overrides,
  };
  // read_scope: rls logs in as a role of its own, with the policies `ormai-proxy rls` prints applied first.
  const rls = (doc as { upstream?: { read_scope?: string } }).upstream?.read_scope === 'rls';
  const env = { ORMAI_UPSTREAM_URL: rls ? await prepareRowSecurityRole(upstreamUrl) : upstreamUrl, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' };
  const config = resolveConfig(doc, QUICKSTART, env);
  const log = process.env.ORMAI_TEST_LOG ? createLogger(process.env.ORMAI_TEST_LOG) : silentLogger;
  let proxy: RunningProxy;
  try {
    if (rls) await applyRowSecurity(upstreamUrl, config);
    proxy = await startProxy(config, log);
  } catch (err) {
    if (rls) await releaseRowSecurityRole(upstreamUrl);
    rmSync(auditDir, { recursive: true, force: true });
    throw err;
  }
  return {
    ...proxy,
    auditFile,
    close: async () => {
      await proxy.close();
      if (rls) await releaseRowSecurityRole(upstreamUrl);
      rmSync(auditDir, { recursive: true, force: true });
    },
    auditEvents: () => {
      if (!existsSync(auditFile)) return [];
      // Only whole lines: a batch being written may be read half-way (the sink writes, then fsyncs).
      const text = readFileSync(auditFile, 'utf8');
      return text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditEvent);
    },
    url: (user = 'tenant1-agent', password = 'tenant1-password', database = 'app') =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}/${database}`,
  };
}

export { loadConfig };
