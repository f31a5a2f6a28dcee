// The error catalogue: every code documented in the README with its SQLSTATE; errors carry code, hint and routine.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { catalogue, ProxyError, toProxyError, type ErrorCode } from '../../../src/errors/catalogue';

const readme = readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');

test.each(Object.entries(catalogue))('%s is documented in the README with its SQLSTATE', (code, entry) => {
  expect(readme).toContain(`| \`${code}\` | \`${entry.sqlstate}\` |`);
});

test('the README documents no code that does not exist', () => {
  const documented = [...readme.matchAll(/^\| `([a-z_]+)` \| `[0-9A-Z]{5}` \|/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(catalogue).sort());
});

test('every entry has a hint an agent can act on', () => {
  for (const entry of Object.values(catalogue)) {
    expect(entry.hint.length).toBeGreaterThan(30);
    expect(entry.sqlstate).toMatch(/^[0-9A-Z]{5}$/);
  }
});

test('client fields carry the code in the message and the routine', () => {
  const err = new ProxyError('statement_not_allowed', { message: 'DROP TABLE is not allowed', detail: 'd', position: 3 });
  expect(err.toFields()).toEqual({
    severity: 'ERROR',
    code: '42501',
    message: 'statement_not_allowed: DROP TABLE is not allowed',
    hint: catalogue.statement_not_allowed.hint,
    routine: 'ormai.statement_not_allowed',
    detail: 'd',
    position: '3',
  });
});

test('unexpected exceptions become XX000 without internals', () => {
  const err = toProxyError(new TypeError('secret internals at /app/src/x.ts:12'));
  expect(err.code satisfies ErrorCode).toBe('internal_error');
  expect(JSON.stringify(err.toFields())).not.toContain('secret internals');
  expect(err.logMessage).toContain('secret internals');
});
