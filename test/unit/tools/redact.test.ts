// Arguments of a call that never compiled, as the audit keeps them: names kept by position, every value a placeholder, free text dropped.
import { initAnalysis } from '../../../src/analysis/pipeline';
import { REASON_SHOWN, redactArguments } from '../../../src/tools/redact';

beforeAll(() => initAnalysis());

test.each<[string, unknown, unknown]>([
  [
    'a query',
    { model: 'orders', where: { status: 'pending', total_cents: { gte: 10, in: [1, 2] }, created_at: null, phone: { is_null: true } }, select: ['id'], order_by: ['-id', { field: 'status', direction: 'desc' }], limit: 5 },
    { model: 'orders', where: { status: '$1', total_cents: { gte: '$2', in: ['$3', '$4'] }, created_at: null, phone: { is_null: true } }, select: ['id'], order_by: ['-id', { field: 'status', direction: 'desc' }], limit: '$5' },
  ],
  ['a write', { model: 'orders', id: { id: 7 }, data: { status: 'x', meta: { a: [1, 'b'] } }, reason: 'Jane Doe asked, card 4242', dry_run: true }, { model: 'orders', id: { id: '$1' }, data: { status: '$2', meta: { a: ['$3', '$4'] } }, reason: REASON_SHOWN, dry_run: true }],
  ['an aggregate', { model: 'orders', aggregates: [{ fn: 'sum', field: 'total_cents' }], group_by: ['status'] }, { model: 'orders', aggregates: [{ fn: 'sum', field: 'total_cents' }], group_by: ['status'] }],
  ['db.sql', { sql: "SELECT * FROM orders WHERE email = 'jane@acme.com' /*reason='x'*/", params: ['secret', 2] }, { sql: 'SELECT * FROM orders WHERE email = $1', params: ['$1', '$2'] }],
  ['unparseable SQL keeps nothing', { sql: "SELEC 'password123'" }, { sql: '<unparseable statement>' }],
  // Names are known by where they stand: a filter on a column called "model" or "fn" holds values.
  ['name-like keys inside values', { where: { model: 'secret', fn: 'secret', select: 'secret', dry_run: 'secret' }, data: { direction: 'secret', reason: 'secret' } }, { where: { model: '$1', fn: '$2', select: '$3', dry_run: '$4' }, data: { direction: '$5', reason: '$6' } }],
  ['long "names" are values', { model: 'x'.repeat(200) }, { model: '$1' }],
  ['not an object', 'DROP TABLE x', '$1'],
  ['nothing', undefined, undefined],
])('%s', (_label, args, redacted) => {
  expect(redactArguments(args)).toEqual(redacted);
});

test('a "__proto__" key stays a key', () => {
  const redacted = redactArguments(JSON.parse('{"model":"orders","where":{"__proto__":{"eq":"secret"}}}'));
  expect(JSON.stringify(redacted)).toBe('{"model":"orders","where":{"__proto__":{"eq":"$1"}}}');
});

test('a deeply nested value is cut off, not walked', () => {
  let deep: unknown = 'secret';
  for (let i = 0; i < 10_000; i++) deep = { a: deep };
  const text = JSON.stringify(redactArguments({ model: 'orders', data: deep }));
  expect(text).not.toContain('secret');
  expect(text.length).toBeLessThan(1000);
});
