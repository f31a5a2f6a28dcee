// A mask, deny or writable entry written without a glob must name a column that exists: a typo must not leave the real column exposed.
import { initAnalysis } from '../../../src/analysis/parser';
import { PolicyCatalogError } from '../../../src/policy/scope';
import { scopeVariant, WITH_COUNTRIES } from '../analysis/rewrite-scope';

const refused = (change: Parameters<typeof scopeVariant>[1], entry: string) =>
  expect(() => scopeVariant(WITH_COUNTRIES, change)).toThrow(new PolicyCatalogError(`policy rewrite-tests: ${entry} names no existing column`));

test.each([
  [{ mask_fields: ['customers.emial'] }, 'mask_fields entry "customers.emial"'],
  [{ mask_fields: [{ field: 'custmers.email', strategy: 'email' as const }] }, 'mask_fields entry "custmers.email"'],
  [{ mask_fields: ['public.customers.phon'] }, 'mask_fields entry "public.customers.phon"'],
  [{ deny_fields: ['customers.api_secrte'] }, 'deny_fields entry "customers.api_secrte"'],
])('%j is refused at load', (change, entry) => refused(change, entry));

test('a writable_fields entry naming a missing column is refused at load', () => {
  refused({ enable_writes: [{ models: ['customers'], operations: ['update'], writable_fields: { customers: ['name', 'emali'] } }] }, 'writable_fields entry "customers.emali"');
});

test.each([
  [{ mask_fields: ['customers.email', '*.phone', 'orders.*_note?'] }],
  // A table that exists but that this policy does not list has nothing to mask: kept.
  [{ models: ['orders'], mask_fields: ['customers.email'] }],
  [{ deny_fields: ['*secret*', 'customers.phone'] }],
])('%j loads', (change) => {
  expect(() => scopeVariant(WITH_COUNTRIES, change)).not.toThrow();
});

describe('row filters, checked with the parser loaded (as at start-up and by check)', () => {
  beforeAll(async () => {
    await initAnalysis();
  });
  const filtered = (row_filter: string) => () => scopeVariant(WITH_COUNTRIES, { models: ['customers', { table: 'orders', row_filter }] });

  test.each([
    ["status <> 'cancelled' AND total_cents > 0"],
    ["orders.status <> 'cancelled'"],
    // A subquery names other relations: not looked into.
    ['customer_id IN (SELECT id FROM customers WHERE name IS NOT NULL)'],
  ])('%s loads', (row_filter) => {
    expect(filtered(row_filter)).not.toThrow();
  });

  test.each([
    ["statu <> 'cancelled'", '"statu"'],
    ["customers.status <> 'x'", '"customers.status"'],
    ['deleted_at IS NULL', '"deleted_at"'],
  ])('%s names no column of the table: refused at load', (row_filter, named) => {
    expect(filtered(row_filter)).toThrow(new PolicyCatalogError(`policy rewrite-tests: the row_filter of public.orders names ${named}, which is no column of the table`));
  });

  test('a filter that is no SQL condition is refused at load', () => {
    expect(filtered('true) OR (true')).toThrow(/row_filter of public.orders is not an SQL condition/);
  });
});
