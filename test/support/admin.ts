// Admin API test helpers: an admin server on a free port with a recording executor, and a small JSON client.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { AdminAuth, AdminToken } from '../../src/admin/auth';
import { AdminServer, type AdminServerOptions } from '../../src/admin/server';
import { MemoryApprovalStore } from '../../src/approvals/memory-store';
import type { Approval, ApprovalEvent, ApprovalStore, ExecutionResult } from '../../src/approvals/types';
import { silentLogger } from '../../src/log';

export const TOKEN = 'test-admin-token-3f9a7c1e5b2d4a68';

/** The named admin identities the tests use, each with its own token (the requester names are here to prove they are refused). */
export const IDENTITIES = ['alice', 'bob', 'carol', 'dave', 'erin', 'agent1', 'tenant1-agent'];
export const identityToken = (name: string) => `test-identity-token-${name}-7c1e5b2d`;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
export const identityEntries = () => IDENTITIES.map((name) => ({ name, token_sha256: sha256(identityToken(name)) }));
export const testAdminAuth = () => new AdminAuth(new AdminToken(TOKEN), identityEntries());

/** Writes the shared token and the identities file into dir; returns the admin config section naming them. */
export function writeAdminSecrets(dir: string): { token_file: string; identities_file: string } {
  const token_file = path.join(dir, 'admin-token');
  const identities_file = path.join(dir, 'admin-identities.yaml');
  writeFileSync(token_file, `${TOKEN}\n`);
  writeFileSync(identities_file, `identities:\n${identityEntries().map((e) => `  - { name: ${e.name}, token_sha256: ${e.token_sha256} }`).join('\n')}\n`);
  return { token_file, identities_file };
}

export interface Harness {
  url: string;
  store: ApprovalStore;
  calls: Approval[];
  events: ApprovalEvent[];
  clock: { now: Date };
  server: AdminServer;
}

const running: AdminServer[] = [];

/** Closes every server startAdmin started (call from afterEach). */
export async function closeAdminServers(): Promise<void> {
  await Promise.all(running.splice(0).map((s) => s.close()));
}

/** An admin server on a free port with a recording executor and a clock the test moves. */
export async function startAdmin(options: Partial<AdminServerOptions> & { result?: (a: Approval) => Promise<ExecutionResult> } = {}): Promise<Harness> {
  const calls: Approval[] = [];
  const events: ApprovalEvent[] = [];
  const clock = { now: new Date() };
  const store = options.approvals ?? new MemoryApprovalStore();
  const server = new AdminServer({
    listen: { host: '127.0.0.1', port: 0 },
    auth: testAdminAuth(),
    approvals: store,
    executor: async (a) => {
      calls.push(a);
      return options.result ? options.result(a) : { rowsAffected: 3 };
    },
    log: silentLogger,
    sweepIntervalMs: 20,
    now: () => clock.now,
    onApprovalEvent: (e) => events.push(e),
    ...options,
  });
  running.push(server);
  const { port } = await server.listen();
  return { url: `http://127.0.0.1:${port}`, store, calls, events, clock, server };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

export async function api(h: { url: string }, method: string, route: string, init: { body?: unknown; raw?: string; token?: string | null; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  // A body that names its caller (approver, by) is sent with that identity's own token.
  const named = (init.body as { approver?: unknown; by?: unknown } | undefined)?.approver ?? (init.body as { by?: unknown } | undefined)?.by;
  const own = typeof named === 'string' && IDENTITIES.includes(named) ? identityToken(named) : TOKEN;
  const token = init.token === undefined ? own : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined = init.raw;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${h.url}${route}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

export const approve = (h: Harness, id: string, approver: string, note?: string) => api(h, 'POST', `/approvals/${id}/approve`, { body: { approver, note } });

