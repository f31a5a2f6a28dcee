import { errorResponse } from '../../../src/protocol/backend/serializer';
import { readErrorFields, writeErrorFields } from '../../../src/protocol/backend/error-fields';
import { ProxyError } from '../../../src/errors/catalogue';
import { sanitizeWriteError } from '../../../src/results/write-errors';
import { objectKey } from '../../../src/analysis/rewrite/catalog-views';

function fields(frame: Buffer): Record<string, string> {
  return Object.fromEntries((readErrorFields(frame) ?? []).map(([c, v]) => [String.fromCharCode(c), v.toString('utf8')]));
}

describe('sanitizeWriteError', () => {
  test('drops DETAIL and HINT, keeps the rest', () => {
    const frame = errorResponse({
      severity: 'ERROR',
      code: '23502',
      message: 'null value in column "customer_id" of relation "orders" violates not-null constraint',
      detail: 'Failing row contains (6, 2, null, 123400, pending, s3cr3t).',
      hint: 'whatever',
      position: '12',
      routine: 'ExecConstraints',
    });
    const out = fields(sanitizeWriteError(frame));
    expect(out).toEqual({
      S: 'ERROR',
      V: 'ERROR',
      C: '23502',
      M: 'null value in column "customer_id" of relation "orders" violates not-null constraint',
      P: '12',
      R: 'ExecConstraints',
    });
  });

  test('a missing column reads exactly like the proxy refusing a hidden one', () => {
    const upstream = errorResponse({
      severity: 'ERROR',
      code: '42703',
      message: 'column "nope" does not exist',
      hint: 'Perhaps you meant to reference the column "customers.api_secret".',
      position: '40',
      routine: 'errorMissingColumn',
    });
    const own = errorResponse(new ProxyError('column_not_found', { message: 'column "nope" does not exist' }).toFields());
    expect(sanitizeWriteError(upstream).equals(own)).toBe(true);
    expect(fields(own).H).not.toMatch(/api_secret/);
  });

  test('a hidden column named in the message, quoted or inside a constraint named after it, gives the generic message', () => {
    const hidden = new Set(['approval_token']);
    for (const [code, message, generic] of [
      ['23502', 'null value in column "approval_token" of relation "orders" violates not-null constraint', 'a column the write does not set needs a value'],
      ['23514', 'new row for relation "orders" violates check constraint "orders_approval_token_check"', 'the write violates a constraint of the table'],
      ['23505', 'duplicate key value violates unique constraint "orders_APPROVAL_TOKEN_key"', 'the write violates a constraint of the table'],
    ]) {
      const out = fields(sanitizeWriteError(errorResponse({ severity: 'ERROR', code, message, routine: 'ExecConstraints' }), { hidden }));
      expect(out).toEqual({ S: 'ERROR', V: 'ERROR', C: code, M: generic, R: 'ExecConstraints' });
    }
    // A constraint of visible columns keeps PostgreSQL's message.
    const visible = 'new row for relation "orders" violates check constraint "orders_total_cents_check"';
    expect(fields(sanitizeWriteError(errorResponse({ severity: 'ERROR', code: '23514', message: visible }), { hidden })).M).toBe(visible);
  });

  describe('with the catalog: decided by the object the error names', () => {
    const visibleObjects = new Set([objectKey('public', 'orders', 'orders_total_cents_check'), objectKey('public', 'orders', 'orders_pkey')]);
    // As PostgreSQL sends them: the object fields (s, t, c, n) after the message.
    const frame = (code: string, message: string, names: { schema?: string; table?: string; column?: string; constraint?: string }) =>
      writeErrorFields(0x45, [
        ...Object.entries({ S: 'ERROR', V: 'ERROR', C: code, M: message, s: names.schema, t: names.table, c: names.column, n: names.constraint, R: 'ExecConstraints' })
          .filter((e): e is [string, string] => e[1] !== undefined)
          .map(([k, v]): [number, Buffer] => [k.charCodeAt(0), Buffer.from(v)]),
      ]);
    const hidden = new Set(['internal_reconciliation_reference_token_for_finance', 'id2']);

    test('a visible constraint keeps its message, even one whose text holds a short hidden name', () => {
      const message = 'duplicate key value violates unique constraint "orders_pkey"';
      expect(fields(sanitizeWriteError(frame('23505', message, { schema: 'public', table: 'orders', constraint: 'orders_pkey' }), { hidden, visibleObjects })).M).toBe(message);
      const check = 'new row for relation "orders" violates check constraint "orders_total_cents_check"';
      expect(fields(sanitizeWriteError(frame('23514', check, { schema: 'public', table: 'orders', constraint: 'orders_total_cents_check' }), { hidden: new Set(['s']), visibleObjects })).M).toBe(check);
    });

    test('a constraint the agent cannot see gives the generic message: one PostgreSQL cut to 63 bytes, a hidden table\'s, one made since', () => {
      for (const [code, message, names] of [
        ['23514', 'new row for relation "orders" violates check constraint "orders_internal_reconciliation_reference_token_for_fina_check"', { table: 'orders', constraint: 'orders_internal_reconciliation_reference_token_for_fina_check' }],
        ['23503', 'update or delete on table "customers" violates foreign key constraint "ledger_links_customer_id_fkey" on table "ledger_links"', { table: 'ledger_links', constraint: 'ledger_links_customer_id_fkey' }],
        ['23505', 'duplicate key value violates unique constraint "orders_status_new_idx"', { table: 'orders', constraint: 'orders_status_new_idx' }],
        // The right name on another table is another object.
        ['23505', 'duplicate key value violates unique constraint "orders_pkey"', { table: 'ledger', constraint: 'orders_pkey' }],
      ] as const) {
        const out = fields(sanitizeWriteError(frame(code, message, { schema: 'public', ...names }), { hidden, visibleObjects }));
        expect(out).toEqual({ S: 'ERROR', V: 'ERROR', C: code, M: 'the write violates a constraint of the table', R: 'ExecConstraints' });
      }
    });

    test('a not-null violation is decided by its column; without the object fields, by the text', () => {
      const named = (column: string) => `null value in column "${column}" of relation "orders" violates not-null constraint`;
      expect(fields(sanitizeWriteError(frame('23502', named('id2'), { schema: 'public', table: 'orders', column: 'id2' }), { hidden, visibleObjects })).M).toBe('a column the write does not set needs a value');
      expect(fields(sanitizeWriteError(frame('23502', named('id'), { schema: 'public', table: 'orders', column: 'id' }), { hidden, visibleObjects })).M).toBe(named('id'));
      // PostgreSQL 18 names the not-null constraint too: a hidden column's is not among the visible ones.
      expect(fields(sanitizeWriteError(frame('23502', named('id2'), { schema: 'public', table: 'orders', column: 'id2', constraint: 'orders_id2_not_null' }), { hidden, visibleObjects })).M).toBe('a column the write does not set needs a value');
      expect(fields(sanitizeWriteError(frame('22001', 'value too long for id2', {}), { hidden, visibleObjects })).M).toBe('the write violates a constraint of the table');
    });
  });

  test('a malformed frame is returned as it came', () => {
    const frame = Buffer.from([0x45, 0, 0, 0, 7, 0x43, 0x31, 0x32]);
    expect(sanitizeWriteError(frame)).toBe(frame);
  });
});
