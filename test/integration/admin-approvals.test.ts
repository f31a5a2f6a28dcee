// The admin HTTP API over real HTTP: auth, list/show/approve/deny, executor exactly once, expiry, hostile input.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { AdminAuth, AdminToken } from '../../src/admin/auth';
import type { Approval, ApprovalEvent } from '../../src/approvals/types';
import { createLogger } from '../../src/log';
import { api, approve, closeAdminServers, identityToken, startAdmin as start, TOKEN } from '../support/admin';
import { approvalRequest } from '../support/approvals';

afterEach(() => closeAdminServers());

describe('auth', () => {
  test('/healthz needs no token; approval routes need the right bearer token', async () => {
    const h = await start();
    expect(await api(h, 'GET', '/healthz', { token: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    const missing = await api(h, 'GET', '/approvals', { token: null });
    expect(missing).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await api(h, 'GET', '/approvals', { token: `${TOKEN}x` })).status).toBe(401);
    expect((await api(h, 'GET', '/approvals', { token: TOKEN.slice(0, -1) })).status).toBe(401);
    expect((await api(h, 'GET', '/approvals', { token: null, headers: { authorization: `Basic ${TOKEN}` } })).status).toBe(401);
    expect((await api(h, 'POST', '/approvals/x/approve', { token: 'nope', body: { approver: 'a' } })).status).toBe(401);
    expect(await api(h, 'GET', '/approvals')).toMatchObject({ status: 200, body: { approvals: [] } });
  });

  test('without a token file every route but /healthz answers 503', async () => {
    const h = await start({ auth: undefined });
    expect((await api(h, 'GET', '/healthz', { token: null })).status).toBe(200);
    expect(await api(h, 'GET', '/approvals')).toMatchObject({ status: 503, body: { error: { code: 'admin_disabled', message: 'admin API disabled: set admin.token_file or admin.identities_file' } } });
  });

  test('the token is read from a file (one trailing newline ignored) and never logged', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-admin-'));
    try {
      writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
      const lines: string[] = [];
      const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
      const h = await start({ auth: new AdminAuth(AdminToken.fromFile(path.join(dir, 'token'))), log: createLogger('trace', sink) });
      const a = await h.store.create(approvalRequest({ approvers: 1 }));
      expect((await api(h, 'GET', '/approvals')).status).toBe(200);
      expect((await api(h, 'GET', '/approvals', { token: 'wrong-token-wrong-token' })).status).toBe(401);
      // The shared token alone acts as the identity `admin`.
      expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { body: {} })).toMatchObject({ status: 200, body: { approval: { approvals: [{ approver: 'admin' }] } } });
      const log = lines.join('');
      expect(log).toMatch(/approved write finished/);
      expect(log).not.toContain(TOKEN);
      expect(log).not.toContain('wrong-token');
      expect(log).not.toContain(a.statementSql);
      writeFileSync(path.join(dir, 'short'), 'abc\n');
      expect(() => AdminToken.fromFile(path.join(dir, 'short'))).toThrow(/at least 16/);
      expect(() => AdminToken.fromFile(path.join(dir, 'absent'))).toThrow(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('approvals', () => {
  test('list filters by state; show returns the held statement, reason, params and preview', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest());
    const b = await h.store.create(approvalRequest({ approvers: 1 }));
    await h.store.deny(b.id, 'alice');
    const pending = await api(h, 'GET', '/approvals?state=pending');
    expect(pending.status).toBe(200);
    expect(pending.body.approvals.map((x: Approval) => x.id)).toEqual([a.id]);
    expect((await api(h, 'GET', '/approvals')).body.approvals).toHaveLength(2);
    expect((await api(h, 'GET', '/approvals?tenant=2')).body.approvals).toHaveLength(0);
    const shown = await api(h, 'GET', `/approvals/${a.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body.approval).toMatchObject({ id: a.id, state: 'pending', statement_sql: a.statementSql, reason: a.reason, params: ['7'], preview: a.preview, approvals: [] });
    // snake_case all the way down, the held rows' column names excepted.
    expect(Object.keys(shown.body.approval).filter((k) => /[A-Z]/.test(k))).toEqual([]);
    expect(shown.body.approval).toMatchObject({ created_at: a.createdAt, expires_at: a.expiresAt, requester: { tenant_id: a.requester.tenantId } });
    expect(await api(h, 'GET', '/approvals/appr_unknown')).toMatchObject({ status: 404, body: { error: { code: 'approval_not_found' } } });
    expect(await api(h, 'GET', '/approvals?state=maybe')).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect((await api(h, 'GET', '/approvals?colour=red')).status).toBe(400);
  });

  test('a decision is recorded under the caller\'s token, never under a name the body gives', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest({ approvers: 2 }));
    // The shared token cannot speak for alice; bob's token cannot either.
    expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { token: TOKEN, body: { approver: 'alice' } })).toMatchObject({ status: 403, body: { error: { code: 'identity_mismatch', message: expect.stringMatching(/admin.identities_file/) } } });
    expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { token: identityToken('bob'), body: { approver: 'alice' } })).toMatchObject({ status: 403, body: { error: { code: 'identity_mismatch' } } });
    // The requester's own token is refused as the requester, whatever the body says.
    expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { token: identityToken('agent1'), body: {} })).toMatchObject({ status: 403, body: { error: { code: 'approval_by_requester' } } });
    // Without a name, the token's identity is the approver; the shared token counts once, as admin.
    expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { token: identityToken('carol'), body: { note: 'fine' } })).toMatchObject({ status: 200, body: { approval: { approvals: [{ approver: 'carol', note: 'fine' }] } } });
    expect(await api(h, 'POST', `/approvals/${a.id}/approve`, { token: identityToken('carol'), body: {} })).toMatchObject({ status: 409, body: { error: { code: 'approval_repeated_approver' } } });
    expect(h.calls).toHaveLength(0);
    const done = await api(h, 'POST', `/approvals/${a.id}/approve`, { token: TOKEN, body: {} });
    expect(done).toMatchObject({ status: 200, body: { executed: true, approval: { state: 'executed', approvals: [{ approver: 'carol' }, { approver: 'admin' }] } } });
    expect(h.events.map((e) => [e.action, e.actor])).toEqual([['approve', 'carol'], ['approve', 'admin'], ['execute', undefined]]);
    const b = await h.store.create(approvalRequest({ approvers: 1 }));
    expect(await api(h, 'POST', `/approvals/${b.id}/deny`, { token: identityToken('dave'), body: { approver: 'alice' } })).toMatchObject({ status: 403 });
    expect(await api(h, 'POST', `/approvals/${b.id}/deny`, { token: identityToken('dave') })).toMatchObject({ status: 200, body: { approval: { state: 'denied', decision: { by: 'dave' } } } });
  });

  test('two distinct approvers needed, requester refused, then the executor runs once and the result is recorded', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest({ approvers: 2 }));
    const first = await approve(h, a.id, 'alice', 'checked the preview');
    expect(first).toMatchObject({ status: 200, body: { executed: false, approval: { state: 'pending', approvals: [{ approver: 'alice', note: 'checked the preview' }] } } });
    expect(await approve(h, a.id, 'alice')).toMatchObject({ status: 409, body: { error: { code: 'approval_repeated_approver' } } });
    expect(await approve(h, a.id, 'agent1')).toMatchObject({ status: 403, body: { error: { code: 'approval_by_requester' } } });
    expect(h.calls).toHaveLength(0);
    const second = await approve(h, a.id, 'bob');
    expect(second).toMatchObject({ status: 200, body: { executed: true, approval: { state: 'executed', result: { rows_affected: 3 } } } });
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]).toMatchObject({ id: a.id, state: 'approved', statementSql: a.statementSql, params: ['7'] });
    expect(await approve(h, a.id, 'carol')).toMatchObject({ status: 409, body: { error: { code: 'approval_not_pending' } } });
    expect(h.events.map((e) => [e.action, e.actor])).toEqual([['approve', 'alice'], ['approve', 'bob'], ['execute', undefined]]);
  });

  test('an executor error or exception is recorded as failed, never retried', async () => {
    const errors = await start({ result: async () => ({ error: { code: '23505', message: 'duplicate key value' } }) });
    const a = await errors.store.create(approvalRequest({ approvers: 1 }));
    expect((await approve(errors, a.id, 'alice')).body.approval).toMatchObject({ state: 'failed', result: { error: { code: '23505' } } });
    const throws = await start({
      result: async () => {
        throw new Error('connection reset');
      },
    });
    const b = await throws.store.create(approvalRequest({ approvers: 1 }));
    const reply = await approve(throws, b.id, 'alice');
    expect(reply).toMatchObject({ status: 200, body: { approval: { state: 'failed', result: { error: { code: 'executor_error' } } } } });
    expect(throws.calls).toHaveLength(1);
  });

  test('the execution is reported before COMMIT and waited for; one the trail cannot take is rolled back and reported again as failed', async () => {
    const changes = { table: 'public.orders', operation: 'update' as const, rows: [{ key: { id: '7' }, before: { status: 'a' }, after: { status: 'b' } }] };
    const steps: string[] = [];
    const reported: ApprovalEvent[] = [];
    let trailUp = true;
    const h = await start({
      // As upstreamExecutor does: run, report, then COMMIT or ROLLBACK.
      executor: async (_a, beforeCommit) => {
        try {
          await beforeCommit({ rowsAffected: 1, changes });
        } catch {
          steps.push('rollback');
          return { error: { code: 'audit_unavailable', message: 'rolled back' } };
        }
        steps.push('commit');
        return { rowsAffected: 1 };
      },
      onApprovalExecuted: async (event) => {
        reported.push(event);
        steps.push('reported');
        if (!trailUp) throw new Error('sink down');
      },
    });
    const a = await h.store.create(approvalRequest({ approvers: 1 }));
    expect((await approve(h, a.id, 'alice')).body.approval).toMatchObject({ state: 'executed', result: { rows_affected: 1 } });
    expect(steps).toEqual(['reported', 'commit']);
    expect(reported).toMatchObject([{ action: 'execute', approval: { id: a.id, state: 'executed', result: { rowsAffected: 1 } }, changes }]);
    // Reported once: not again through the listener once the result is stored.
    expect(h.events.map((e) => e.action)).toEqual(['approve']);

    trailUp = false;
    const b = await h.store.create(approvalRequest({ approvers: 1 }));
    expect((await approve(h, b.id, 'alice')).body.approval).toMatchObject({ state: 'failed', result: { error: { code: 'audit_unavailable' } } });
    expect(steps.slice(2)).toEqual(['reported', 'rollback']);
    expect(h.events.filter((e) => e.approval.id === b.id).map((e) => [e.action, e.approval.state])).toEqual([
      ['approve', 'approved'],
      ['execute', 'failed'],
    ]);
  });

  test('deny ends the request; later approvals are refused and nothing runs', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest());
    const denied = await api(h, 'POST', `/approvals/${a.id}/deny`, { body: { approver: 'alice', note: 'wrong customer' } });
    expect(denied).toMatchObject({ status: 200, body: { approval: { state: 'denied', decision: { by: 'alice', note: 'wrong customer' } } } });
    expect((await approve(h, a.id, 'bob')).status).toBe(409);
    expect((await api(h, 'POST', `/approvals/${a.id}/deny`, { body: { approver: 'bob' } })).status).toBe(409);
    expect((await api(h, 'POST', '/approvals/appr_nope/deny', { body: { approver: 'bob' } })).status).toBe(404);
    expect(h.calls).toHaveLength(0);
  });

  test('racing final approvals: the executor is called exactly once', async () => {
    const h = await start({ result: async () => new Promise((r) => setTimeout(() => r({ rowsAffected: 1 }), 50)) });
    for (let round = 0; round < 5; round++) {
      const a = await h.store.create(approvalRequest({ approvers: 2 }));
      await approve(h, a.id, 'alice');
      const replies = await Promise.all(['bob', 'carol', 'dave', 'erin'].map((n) => approve(h, a.id, n)));
      expect(replies.filter((r) => r.status === 200 && r.body.executed)).toHaveLength(1);
      expect(replies.filter((r) => r.status === 409)).toHaveLength(3);
      expect(h.calls.filter((c) => c.id === a.id)).toHaveLength(1);
      expect((await api(h, 'GET', `/approvals/${a.id}`)).body.approval.state).toBe('executed');
    }
  });

  test('expiry: the sweeper denies overdue requests automatically; approving one answers 410', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest({ expiresInS: 60 }), h.clock.now);
    const b = await h.store.create(approvalRequest({ expiresInS: 60 }), h.clock.now);
    h.clock.now = new Date(h.clock.now.getTime() + 61_000);
    expect(await approve(h, b.id, 'alice')).toMatchObject({ status: 410, body: { error: { code: 'approval_expired' } } });
    for (let i = 0; i < 100 && (await h.store.get(a.id))!.state === 'pending'; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await api(h, 'GET', `/approvals/${a.id}`)).body.approval).toMatchObject({ state: 'expired', decision: { by: 'ormai:expiry' } });
    // a is expired by the sweeper, once. b is expired by whichever comes first, the sweeper or the
    // approval that found it overdue (the sweeper may run between the clock moving and the request).
    const expired = h.events.filter((e) => e.action === 'expire').map((e) => e.approval.id);
    expect(expired.filter((id) => id === a.id)).toEqual([a.id]);
    expect(expired.filter((id) => id !== a.id && id !== b.id)).toEqual([]);
    expect(expired.filter((id) => id === b.id)).toEqual([b.id]);
    expect(h.calls).toHaveLength(0);
  });

  test('an approval or denial that finds a request overdue records it expired and reports the expiry, once', async () => {
    // No sweeper in the way: only the approve and deny calls see the requests overdue.
    const h = await start({ sweepIntervalMs: 3_600_000 });
    const c = await h.store.create(approvalRequest({ expiresInS: 60 }), h.clock.now);
    const d = await h.store.create(approvalRequest({ expiresInS: 60 }), h.clock.now);
    h.clock.now = new Date(h.clock.now.getTime() + 61_000);
    expect(await approve(h, c.id, 'alice')).toMatchObject({ status: 410 });
    expect((await api(h, 'POST', `/approvals/${d.id}/deny`, { body: { approver: 'bob' } })).status).toBe(410);
    // Asking again changes nothing and reports nothing more.
    expect(await approve(h, c.id, 'carol')).toMatchObject({ status: 410 });
    expect(h.events.map((e) => [e.action, e.approval.id, e.approval.state])).toEqual([
      ['expire', c.id, 'expired'],
      ['expire', d.id, 'expired'],
    ]);
  });
});

describe('hostile and malformed input', () => {
  test('bad bodies, unknown routes and wrong methods get JSON errors; the server keeps serving', async () => {
    const h = await start();
    const a = await h.store.create(approvalRequest());
    const post = (init: Parameters<typeof api>[3]) => api(h, 'POST', `/approvals/${a.id}/approve`, init);
    expect(await post({ raw: '{"approver": ', headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { error: { code: 'invalid_json' } } });
    expect(await post({ raw: 'null', headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect((await post({ body: [] })).status).toBe(400);
    expect((await post({ body: { approver: '' } })).status).toBe(400);
    expect((await post({ body: { approver: 'a\nb' } })).status).toBe(400);
    expect((await post({ body: { approver: 'alice', admin: true } })).status).toBe(400);
    expect((await post({ body: { approver: 42 } })).status).toBe(400);
    expect(await post({ raw: 'approver=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).toMatchObject({ status: 415 });
    expect(await post({ body: { approver: 'alice', note: 'x'.repeat(70 * 1024) } })).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
    expect(await api(h, 'GET', '/nowhere')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect((await api(h, 'GET', '/approvals/')).status).toBe(404);
    const wrong = await api(h, 'DELETE', '/approvals');
    expect(wrong).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed' } } });
    expect(wrong.headers.get('allow')).toBe('GET');
    expect((await api(h, 'GET', `/approvals/${a.id}/approve`)).status).toBe(405);
    expect((await api(h, 'GET', '/approvals/%E0%A4%A')).status).toBe(400);
    expect((await api(h, 'GET', `/approvals/${a.id}`)).body.approval.approvals).toEqual([]);
    expect((await api(h, 'GET', '/healthz')).status).toBe(200);
  });

  test('a chunked body over the limit is cut off with 413, and raw garbage gets 400', async () => {
    const h = await start({ bodyLimit: 1024 });
    const port = Number(new URL(h.url).port);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/approvals/x/approve', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(512));
      req.end();
    });
    expect(status).toBe(413);
    const garbage = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end('NOT HTTP AT ALL\r\n\r\n'));
      let out = '';
      socket.on('data', (d: Buffer) => (out += d.toString()));
      socket.on('close', () => resolve(out));
      socket.on('error', reject);
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect((await api(h, 'GET', '/healthz')).status).toBe(200);
  });
});
