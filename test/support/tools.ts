// The tool doors under test: a proxy with the tool-call listener, tenant users with bearer tokens, and a small client.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { AuditEvent } from '../../src/audit/event';
import { writeAdminSecrets } from './admin';
import { startTestProxy, type TestProxy } from './proxy';

export const TOOL_TOKENS = { tenant1: 'tool-token-tenant-one-0123456789abcdef', tenant2: 'tool-token-tenant-two-0123456789abcdef' } as const;
export type Tenant = keyof typeof TOOL_TOKENS;

export interface ToolHarness {
  proxy: TestProxy;
  /** The tool listener's base URL. */
  base: string;
  tool(name: string, args: unknown, who?: Tenant, toolCallId?: string): Promise<{ status: number; body: any }>;
  /** The same question in SQL through the wire, as the same agent. */
  sql(text: string, who?: Tenant): Promise<any[]>;
  /** The audit event with this id, once it is in the file. */
  eventOf(auditId: string): Promise<AuditEvent>;
  close(): Promise<void>;
}

/** A proxy over `dbUrl` with `policy`, the tool listener on a free port, and tenant1/tenant2 agents with passwords and tokens. */
export async function startToolHarness(dbUrl: string, policy: string, overrides: Record<string, unknown> = {}): Promise<ToolHarness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-tools-'));
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  writeFileSync(
    path.join(dir, 'users.yaml'),
    [
      'users:',
      `  - { name: tenant1-agent, password: tenant1-password, tenant_id: 1, roles: [agent], token_sha256: ${sha(TOOL_TOKENS.tenant1)} }`,
      `  - { name: tenant2-agent, password: tenant2-password, tenant_id: 2, roles: [agent], token_sha256: ${sha(TOOL_TOKENS.tenant2)} }`,
    ].join('\n'),
  );
  const proxy = await startTestProxy(dbUrl, {
    policies: [policy],
    auth: { method: 'scram-sha-256', users_file: path.join(dir, 'users.yaml') },
    admin: writeAdminSecrets(dir),
    tools: { listen: '127.0.0.1:0' },
    ...overrides,
  });
  const base = `http://127.0.0.1:${proxy.tools.http!.port}`;
  return {
    proxy,
    base,
    async tool(name, args, who = 'tenant1', toolCallId) {
      const res = await fetch(`${base}/agent/tool`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOOL_TOKENS[who]}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, arguments: args, ...(toolCallId ? { tool_call_id: toolCallId } : {}) }),
      });
      return { status: res.status, body: await res.json() };
    },
    async sql(text, who = 'tenant1') {
      const c = new Client({ connectionString: proxy.url(`${who}-agent`, `${who}-password`) });
      await c.connect();
      try {
        return (await c.query(text)).rows;
      } finally {
        await c.end();
      }
    },
    async eventOf(auditId) {
      for (let i = 0; i < 100; i++) {
        const event = proxy.auditEvents().find((e) => e.id === auditId);
        if (event) return event;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no audit event ${auditId}`);
    },
    async close() {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
