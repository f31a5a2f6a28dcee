import { errorResponse } from '../../../src/protocol/backend/serializer';
import { readErrorFields } from '../../../src/protocol/backend/error-fields';
import { ProxyError } from '../../../src/errors/catalogue';
import { sanitizeWriteError } from '../../../src/results/write-errors';

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
      const out = fields(sanitizeWriteError(errorResponse({ severity: 'ERROR', code, message, routine: 'ExecConstraints' }), hidden));
      expect(out).toEqual({ S: 'ERROR', V: 'ERROR', C: code, M: generic, R: 'ExecConstraints' });
    }
    // A constraint of visible columns keeps PostgreSQL's message.
    const visible = 'new row for relation "orders" violates check constraint "orders_total_cents_check"';
    expect(fields(sanitizeWriteError(errorResponse({ severity: 'ERROR', code: '23514', message: visible }), hidden)).M).toBe(visible);
  });

  test('a malformed frame is returned as it came', () => {
    const frame = Buffer.from([0x45, 0, 0, 0, 7, 0x43, 0x31, 0x32]);
    expect(sanitizeWriteError(frame)).toBe(frame);
  });
});
