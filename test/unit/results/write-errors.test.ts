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

  test('a malformed frame is returned as it came', () => {
    const frame = Buffer.from([0x45, 0, 0, 0, 7, 0x43, 0x31, 0x32]);
    expect(sanitizeWriteError(frame)).toBe(frame);
  });
});
