// Admin API building blocks: route matching (404/405), and the bearer-token check.
import { AdminToken } from '../../../src/admin/auth';
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
