// Scan estimates from EXPLAIN plans: whole tables for sequential scans, loops, LIMIT, blocking nodes.
import { estimateScanRows, sequentialScans } from '../../../src/budgets/scan-estimate';
import type { CatalogSnapshot } from '../../../src/policy/scope';

const catalog: CatalogSnapshot = {
  database: 'app',
  searchPath: ['public'],
  types: new Set(),
  parameterTypes: new Set(),
  relations: new Map([['public.events', { schema: 'public', name: 'events', oid: 1, kind: 'r', rowEstimate: 50_000, columns: [] }]]),
};
const plan = (p: object) => [{ Plan: p }];
const seq = (rows: number) => ({ 'Node Type': 'Seq Scan', 'Relation Name': 'events', Schema: 'public', 'Plan Rows': rows });

test('a sequential scan reads the whole table, whatever its filter keeps', () => {
  expect(estimateScanRows(plan(seq(10)), catalog)).toBe(50_000);
});

test("a sequential scan of a tenant-scoped table counts the tenant's share of it: the table's size counts every tenant's rows", () => {
  expect(estimateScanRows(plan(seq(10)), catalog, new Map([['public.events', 300]]))).toBe(300);
  expect(estimateScanRows(plan(seq(400)), catalog, new Map([['public.events', 300]]))).toBe(400);
  expect(estimateScanRows(plan(seq(10)), catalog, new Map([['public.other', 300]]))).toBe(50_000);
  expect([...sequentialScans(plan({ 'Node Type': 'Hash Join', Plans: [seq(1), { 'Node Type': 'Index Scan', 'Relation Name': 'x', Schema: 'public' }] }), catalog)]).toEqual(['public.events']);
});

test('an index scan reads its estimated rows', () => {
  expect(estimateScanRows(plan({ 'Node Type': 'Index Scan', 'Relation Name': 'events', 'Plan Rows': 3 }), catalog)).toBe(3);
});

test('a LIMIT shortens the scan below it in proportion', () => {
  expect(estimateScanRows(plan({ 'Node Type': 'Limit', 'Plan Rows': 100, Plans: [seq(50_000)] }), catalog)).toBe(100);
});

test('a sort between LIMIT and scan reads everything first', () => {
  const p = { 'Node Type': 'Limit', 'Plan Rows': 100, Plans: [{ 'Node Type': 'Sort', 'Plan Rows': 50_000, Plans: [seq(50_000)] }] };
  expect(estimateScanRows(plan(p), catalog)).toBe(50_000);
});

test('the inner side of a nested loop runs once per outer row', () => {
  const p = {
    'Node Type': 'Nested Loop',
    'Plan Rows': 1000,
    Plans: [
      { 'Node Type': 'Index Scan', 'Relation Name': 'events', 'Parent Relationship': 'Outer', 'Plan Rows': 20 },
      { 'Node Type': 'Index Scan', 'Relation Name': 'events', 'Parent Relationship': 'Inner', 'Plan Rows': 5 },
    ],
  };
  expect(estimateScanRows(plan(p), catalog)).toBe(20 + 20 * 5);
});

test('output without a plan is an error', () => {
  expect(() => estimateScanRows([{}], catalog)).toThrow(/no plan/);
});

test('scans of the system catalogs (an ORM introspecting) do not count; the data tables beside them do', () => {
  const p = {
    'Node Type': 'Nested Loop',
    'Plan Rows': 1000,
    Plans: [
      { 'Node Type': 'Seq Scan', 'Relation Name': 'pg_type', Schema: 'pg_catalog', 'Parent Relationship': 'Outer', 'Plan Rows': 600 },
      { 'Node Type': 'Index Scan', 'Relation Name': 'pg_class', Schema: 'pg_catalog', 'Parent Relationship': 'Inner', 'Plan Rows': 170 },
    ],
  };
  expect(estimateScanRows(plan(p), catalog)).toBe(0);
  const columns = { 'Node Type': 'Seq Scan', 'Relation Name': 'columns', Schema: 'information_schema', 'Plan Rows': 5000 };
  expect(estimateScanRows(plan({ 'Node Type': 'Append', 'Plan Rows': 5010, Plans: [columns, seq(10)] }), catalog)).toBe(50_000);
});
