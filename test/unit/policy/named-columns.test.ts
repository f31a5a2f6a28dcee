// A mask, deny or writable entry written without a glob must name a column that exists: a typo must not leave the real column exposed.
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
