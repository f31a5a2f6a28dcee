// Admin API test helpers: an admin server on a free port with a recording executor, and a small JSON client.
import { AdminToken } from '../../src/admin/auth';
import { AdminServer, type AdminServerOptions } from '../../src/admin/server';
import { MemoryApprovalStore } from '../../src/approvals/memory-store';
import type { Approval, ApprovalEvent, ApprovalStore, ExecutionResult } from '../../src/approvals/types';
import { silentLogger } from '../../src/log';

export const TOKEN = 'test-admin-token-3f9a7c1e5b2d4a68';

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
    token: new AdminToken(TOKEN),
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
  const token = init.token === undefined ? TOKEN : init.token;
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

