import type { AuditEvent } from '../../../src/audit/event';
import { describeInverse, inverseOf, NotReversibleError } from '../../../src/audit/rollback';

function event(changes: AuditEvent['changes'], over: Partial<AuditEvent> = {}): AuditEvent {
  return { id: '01J0000000000000000000000', time: '2026-11-30T00:00:00Z', kind: 'statement', decision: 'allowed', changes, ...over };
}

describe('inverseOf', () => {
  test('an UPDATE goes back to the values before, only where the row still holds the values after', () => {
    const inv = inverseOf(event({ table: 'public.orders', operation: 'update', rows: [{ key: { id: '7' }, before: { status: 'pending' }, after: { status: 'cancelled' } }] }));
    expect(inv).toEqual([
      {
        sql: 'UPDATE "public"."orders" SET "status" = $2 WHERE "id" = $1 AND "status" IS NOT DISTINCT FROM $3',
        params: ['7', 'pending', 'cancelled'],
        row: { key: { id: '7' }, before: { status: 'pending' }, after: { status: 'cancelled' } },
      },
    ]);
    expect(describeInverse(inv)).toBe(`UPDATE "public"."orders" SET "status" = 'pending' WHERE "id" = '7' AND "status" IS NOT DISTINCT FROM 'cancelled'`);
  });

  test('an INSERT is deleted, a DELETE re-inserted; NULLs and quotes survive', () => {
    const [del] = inverseOf(event({ table: 'public.orders', operation: 'insert', rows: [{ key: { id: '9' }, after: { status: null, note: "it's" } }] }));
    expect(del.sql).toBe('DELETE FROM "public"."orders" WHERE "id" = $1 AND "status" IS NOT DISTINCT FROM $2 AND "note" IS NOT DISTINCT FROM $3');
    expect(del.params).toEqual(['9', null, "it's"]);
    expect(describeInverse([del])).toContain(`'it''s'`);
    const [ins] = inverseOf(event({ table: 'public.orders', operation: 'delete', rows: [{ key: { id: '9' }, before: { tenant_id: '1', status: 'paid' } }] }));
    expect(ins.sql).toBe('INSERT INTO "public"."orders" ("id", "tenant_id", "status") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING');
    expect(ins.params).toEqual(['9', '1', 'paid']);
  });

  test("a tenant-scoped table's rows are named by their key and the write's tenant: the key may be another tenant's by now", () => {
    const who = { principal: { user: 'agent', tenant_id: '1', roles: [] } };
    const update = inverseOf(event({ table: 'public.orders', operation: 'update', tenant_column: 'tenant_id', rows: [{ key: { id: '7' }, before: { status: 'a' }, after: { status: 'b' } }] }, who));
    expect(update[0].sql).toBe('UPDATE "public"."orders" SET "status" = $3 WHERE "id" = $1 AND "tenant_id" = $2 AND "status" IS NOT DISTINCT FROM $4');
    expect(update[0].params).toEqual(['7', '1', 'a', 'b']);
    const [del] = inverseOf(event({ table: 'public.orders', operation: 'insert', tenant_column: 'tenant_id', rows: [{ key: { id: '9' }, after: { status: 'x' } }] }, who));
    expect(del.sql).toBe('DELETE FROM "public"."orders" WHERE "id" = $1 AND "tenant_id" = $2 AND "status" IS NOT DISTINCT FROM $3');
    // A deleted row goes back under its tenant, whatever the capture held.
    const [ins] = inverseOf(event({ table: 'public.orders', operation: 'delete', tenant_column: 'tenant_id', rows: [{ key: { id: '9' }, before: { status: 'paid' } }] }, who));
    expect(ins.sql).toBe('INSERT INTO "public"."orders" ("id", "status", "tenant_id") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING');
    expect(ins.params).toEqual(['9', 'paid', '1']);
    expect(() => inverseOf(event({ table: 'public.orders', operation: 'update', tenant_column: 'tenant_id', rows: [] }))).toThrow(/no tenant/);
  });

  test('identifiers from the event are quoted, never spliced', () => {
    const [s] = inverseOf(event({ table: 'public.t"; DROP TABLE x; --', operation: 'update', rows: [{ key: { 'id"': '1' }, before: { a: 'x' }, after: { a: 'y' } }] }));
    expect(s.sql).toBe('UPDATE "public"."t""; DROP TABLE x; --" SET "a" = $2 WHERE "id""" = $1 AND "a" IS NOT DISTINCT FROM $3');
  });

  test("an approved write's execution is undone like the agent's own write; its other steps are not writes", () => {
    const changes = { table: 'public.orders', operation: 'update' as const, rows: [{ key: { id: '7' }, before: { status: 'pending' }, after: { status: 'cancelled' } }] };
    expect(inverseOf(event(changes, { kind: 'approval', decision: 'executed' }))).toEqual(inverseOf(event(changes)));
    expect(() => inverseOf(event(changes, { kind: 'approval', decision: 'failed' }))).toThrow(/failed approval, not an executed write/);
    expect(() => inverseOf(event(changes, { kind: 'approval', decision: 'allowed' }))).toThrow(/not an executed write/);
    expect(() => inverseOf(event(changes, { kind: 'connection', decision: 'login' }))).toThrow(/records no changed rows/);
  });

  test('what cannot be undone is refused with the reason', () => {
    expect(() => inverseOf(event(undefined))).toThrow(NotReversibleError);
    expect(() => inverseOf(event({ table: 't', operation: 'update', rows: [] }, { decision: 'refused' }))).toThrow(/not an executed write/);
    expect(() => inverseOf(event({ table: 't', operation: 'update', rows: [], truncated: true }))).toThrow(/only part/);
    expect(() => inverseOf(event({ table: 't', operation: 'update', rows: [{ key: { id: '1' }, before: { b: '\\x00ff' }, after: { b: 'x' } }] }))).toThrow(/binary/);
  });
});
