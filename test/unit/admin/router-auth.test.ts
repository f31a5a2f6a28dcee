// Admin API building blocks: route matching (404/405), and the bearer-token check.
import { createHash } from 'node:crypto';
import { AdminAuth, AdminToken, newIdentityToken } from '../../../src/admin/auth';
import { Router, type Route } from '../../../src/admin/router';

const handler: Route['handler'] = async () => ({ status: 200, body: {} });
const seg = (p: string) => p.slice(1).split('/');

describe('Router', () => {
  const router = new Router()
    .add({ method: 'GET', path: '/approvals', handler })
    .add({ method: 'GET', path: '/approvals/:id', handler })
    .add({ method: 'POST', path: '/approvals/:id/approve', handler });

  test('matches literal and parameter segments', () => {
    expect(router.match('GET', seg('/approvals'))).toMatchObject({ kind: 'found', params: {} });
    expect(router.match('GET', seg('/approvals/appr_1'))).toMatchObject({ kind: 'found', params: { id: 'appr_1' } });
    expect(router.match('POST', seg('/approvals/a b/approve'))).toMatchObject({ kind: 'found', params: { id: 'a b' } });
  });

  test('a known path with another method is 405 with the allowed methods; anything else is none', () => {
    expect(router.match('DELETE', seg('/approvals'))).toEqual({ kind: 'method', allowed: ['GET'] });
    expect(router.match('GET', seg('/approvals/x/approve'))).toEqual({ kind: 'method', allowed: ['POST'] });
    expect(router.match('GET', seg('/approvals/'))).toEqual({ kind: 'none' });
    expect(router.match('GET', seg('/approvals/x/y'))).toEqual({ kind: 'none' });
    expect(router.match('GET', seg('/'))).toEqual({ kind: 'none' });
  });

  test('refuses a duplicate route and a path without a leading slash', () => {
    expect(() => router.add({ method: 'GET', path: '/approvals/:other', handler })).toThrow(/duplicate/);
    expect(() => new Router().add({ method: 'GET', path: 'metrics', handler })).toThrow(/start with/);
  });
});

describe('AdminToken', () => {
  const secret = 's3cret-token-0123456789abcdef';
  const token = new AdminToken(secret);

  test('accepts exactly "Bearer <token>" (scheme case-insensitive)', () => {
    expect(token.matches(`Bearer ${secret}`)).toBe(true);
    expect(token.matches(`bearer  ${secret} `)).toBe(true);
    for (const wrong of [undefined, '', secret, `Bearer`, `Bearer ${secret}x`, `Bearer ${secret.slice(1)}`, `Basic ${secret}`, `Bearer ${secret} extra`]) {
      expect(token.matches(wrong)).toBe(false);
    }
  });

  test('refuses short tokens and tokens with whitespace', () => {
    expect(() => new AdminToken('short')).toThrow(/at least 16/);
    expect(() => new AdminToken('has a space in it, long')).toThrow(/whitespace/);
  });

  test('serialises without the token or its digest', () => {
    expect(JSON.stringify({ token })).toBe('{"token":"[admin token]"}');
    expect(Object.keys(token)).toEqual(['expected']);
  });
});

describe('AdminAuth', () => {
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  const shared = 'shared-admin-token-0123456789';
  const alice = 'alice-own-token-0123456789abc';
  const auth = new AdminAuth(new AdminToken(shared), [{ name: ' alice ', token_sha256: sha(alice) }]);

  test('the shared token is the identity admin; a named token is its own name; anything else nobody', () => {
    expect(auth.identify(`Bearer ${shared}`)).toEqual({ name: 'admin', shared: true, role: 'admin' });
    expect(auth.identify(`Bearer ${alice}`)).toEqual({ name: 'alice', shared: false, role: 'admin' });
    const scraper = new AdminAuth(undefined, [{ name: 'prometheus', token_sha256: sha('scrape-token-0123456789'), role: 'metrics' }]);
    expect(scraper.identify('Bearer scrape-token-0123456789')).toEqual({ name: 'prometheus', shared: false, role: 'metrics' });
    for (const wrong of [undefined, '', `Bearer ${alice}x`, `Basic ${alice}`, `Bearer ${sha(alice)}`]) expect(auth.identify(wrong)).toBeUndefined();
  });

  test('refuses a reserved, repeated or shared-token identity', () => {
    expect(() => new AdminAuth(undefined, [{ name: 'Admin', token_sha256: sha(alice) }])).toThrow(/reserved/);
    expect(() => new AdminAuth(undefined, [{ name: 'a', token_sha256: sha(alice) }, { name: 'A ', token_sha256: sha('x') }])).toThrow(/twice/);
    expect(() => new AdminAuth(undefined, [{ name: 'a', token_sha256: sha(alice) }, { name: 'b', token_sha256: sha(alice) }])).toThrow(/same token/);
    expect(() => new AdminAuth(new AdminToken(alice), [{ name: 'a', token_sha256: sha(alice) }])).toThrow(/same token as admin.token_file/);
    expect(new AdminAuth().enabled).toBe(false);
    expect(JSON.stringify({ auth })).toBe('{"auth":"[admin auth]"}');
  });

  test('newIdentityToken gives a token whose entry identifies it', () => {
    expect(newIdentityToken('prom', 'metrics').entry).toMatch(/, role: metrics \}$/);
    const { token, entry } = newIdentityToken('bob@example.com');
    const m = /name: "bob@example.com", token_sha256: ([0-9a-f]{64}) \}/.exec(entry);
    expect(m?.[1]).toBe(sha(token));
    expect(new AdminAuth(undefined, [{ name: 'bob@example.com', token_sha256: m![1] }]).identify(`Bearer ${token}`)?.name).toBe('bob@example.com');
  });
});
