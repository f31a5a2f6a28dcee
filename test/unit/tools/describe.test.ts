// db.describe_schema: visible fields only (types as the agent reads them, masks marked), keys, writes as the pipeline applies them, approval rules.
import { buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { compileScope } from '../../../src/policy/scope';
import { describeSchema } from '../../../src/tools/describe';
import { quickstartCatalog } from '../analysis/rewrite-scope';
import { extendedScope, quickstart, scope } from './tool-scope';

test('the quickstart policy, as the agent may use it', () => {
  const d = describeSchema(quickstart);
  expect(d).toMatchObject({ policy: 'quickstart', tenant_column: 'tenant_id', max_rows: 200, statement_timeout_ms: 3000, max_writes_per_minute: 20 });
  const [customers, orders] = d.models;
  expect(customers).toEqual({
    name: 'customers',
    table: 'public.customers',
    primary_key: ['id'],
    tenant_scoped: true,
    row_filter: false,
    fields: [
      { name: 'id', type: 'integer', nullable: false, generated: true, primary_key: true },
      { name: 'tenant_id', type: 'integer', nullable: false, tenant: true },
      { name: 'name', type: 'character varying(120)', nullable: false },
      { name: 'email', type: 'character varying(120)', nullable: false, masked: 'email' },
      { name: 'phone', type: 'character varying(40)', nullable: true, masked: 'phone' },
    ],
    operations: ['read'],
    writes: {},
  });
  expect(orders.operations).toEqual(['read', 'create']);
  // The database numbers id and the proxy sets tenant_id: neither is the agent's to write.
  expect(orders.writes).toEqual({ create: { reason_required: true, writable_fields: ['customer_id', 'total_cents', 'status', 'created_at'], approvals: [] } });
});

test('denied fields appear nowhere', () => {
  for (const s of [quickstart, scope, extendedScope()]) {
    const text = JSON.stringify(describeSchema(s));
    expect(text).not.toMatch(/secret/i);
  }
});

test('writable_fields from the policy, per operation; models named apart from their tables', () => {
  const d = describeSchema(scope);
  const customers = d.models.find((m) => m.name === 'customers')!;
  expect(customers.operations).toEqual(['read', 'create', 'update']);
  expect(customers.writes.update).toEqual({ reason_required: true, writable_fields: ['name', 'email', 'phone'], approvals: [] });
  const orders = d.models.find((m) => m.name === 'orders')!;
  expect(orders.writes.delete).toEqual({ reason_required: false, approvals: [] });
  const countries = d.models.find((m) => m.name === 'countries')!;
  expect(countries).toMatchObject({ tenant_scoped: false, primary_key: null, operations: ['read'] });

  const ext = describeSchema(extendedScope());
  expect(ext.models.map((m) => [m.name, m.table])).toEqual([
    ['customers', 'public.customers'],
    ['OrderLine', 'sales.order_lines'],
    ['Country', 'public.countries'],
  ]);
  expect(ext.models[1].primary_key).toEqual(['tenant_id', 'order_id', 'line_no']);
});

test('approval rules and caps that apply to each write', () => {
  const raw = policySchema.parse({
    ...scope.policy.raw,
    enable_writes: [{ models: ['orders'], operations: ['update', 'delete'], max_affected_rows: 50 }],
    require_approval: [
      { operation: 'update', model: 'orders', when: { field: 'status', in: ['refunded'] }, approvers: 2, expires_in_s: 600 },
      { operation: 'update', model: 'public.orders', when: { affected_rows_gt: 5 } },
      { operation: 'delete', model: 'customers' },
    ],
  });
  const d = describeSchema(buildPolicy(raw, 'p.yaml'), quickstartCatalog());
  const orders = d.models.find((m) => m.name === 'orders')!;
  expect(orders.writes.update).toEqual({
    reason_required: true,
    writable_fields: ['customer_id', 'total_cents', 'status', 'created_at'],
    max_affected_rows: 50,
    approvals: [
      { rule: 'update orders when status in ["refunded"]', approvers: 2, expires_in_s: 600 },
      { rule: 'update public.orders when more than 5 rows change', approvers: 1, expires_in_s: 3600 },
    ],
  });
  expect(orders.writes.delete?.approvals).toEqual([]);
});

test('a masked column that is not text reads as text', () => {
  const raw = policySchema.parse({ ...quickstart.policy.raw, mask_fields: [{ field: 'orders.total_cents', strategy: 'last4' }, { field: 'orders.status', strategy: 'null' }] });
  const d = describeSchema(compileScope(buildPolicy(raw, 'p.yaml'), quickstartCatalog()), { model: 'orders' });
  expect(d.models).toHaveLength(1);
  expect(d.models[0].fields.find((f) => f.name === 'total_cents')).toEqual({ name: 'total_cents', type: 'text', nullable: false, masked: 'last4' });
  expect(d.models[0].fields.find((f) => f.name === 'status')).toEqual({ name: 'status', type: 'character varying(20)', nullable: false, masked: 'null' });
});

test('one model, by any of its names; an unknown one is refused with the models there are', () => {
  expect(describeSchema(scope, { model: 'public.orders' }).models.map((m) => m.name)).toEqual(['orders']);
  expect(() => describeSchema(scope, { model: 'internal_notes' })).toThrow(expect.objectContaining({ code: 'model_not_allowed', hint: expect.stringContaining('customers, orders, countries') }));
});

test('the policy-and-catalog form gives what the compiled scope gives', () => {
  expect(describeSchema(quickstart.policy, quickstartCatalog())).toEqual(describeSchema(quickstart));
});
