// An approved write against the preview its approvers saw: more rows, or rows it did not list, and it does not commit.
import { beyondPreview } from '../../../src/approvals/executor';
import type { ExecutedWrite } from '../../../src/approvals/types';

const write = (keys: Array<Record<string, string | null>>): ExecutedWrite => ({
  rowsAffected: keys.length,
  changes: { table: 'public.orders', operation: 'update', rows: keys.map((key) => ({ key })) },
});

describe('beyondPreview', () => {
  test('more rows than the preview counted', () => {
    expect(beyondPreview({ preview: [] }, write([{ id: '1' }]))).toMatch(/would now change 1 rows; the approvers saw 0/);
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 1 }] }, write([{ id: '1' }]))).toBeUndefined();
  });

  test('a row the complete preview did not list, compared as PostgreSQL wrote each form', () => {
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 1 }] }, write([{ id: '2' }]))).toMatch(/a row the approvers did not see \(\["2"\]\)/);
    // json_agg writes an int8 as a JSON number that JSON.parse rounds; numeric loses its trailing zeros.
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 1234567890123456800 }] }, write([{ id: '1234567890123456789' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 1.1 }] }, write([{ id: '1.10' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 'a-1' }] }, write([{ id: 'a-1' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 1, id: 'a-1' }] }, write([{ id: 'a-2' }]))).toMatch(/did not see/);
  });

  test('not judged: no preview, an incomplete one, keys it does not list, forms that cannot be compared', () => {
    expect(beyondPreview({}, write([{ id: '9' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 150, id: 1 }] }, write([{ id: '9' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 1, name: 'x' }] }, write([{ id: '9' }]))).toBeUndefined();
    expect(beyondPreview({ preview: [{ affected_rows: 1, at: '2024-01-02T03:04:05' }] }, write([{ at: '2024-01-02 03:04:05' }]))).toBeUndefined();
  });
});

describe('beyondPreview: the values the approvers saw, where they read the database', () => {
  const changed = (operation: 'update' | 'insert', rows: Array<{ key: Record<string, string>; after: Record<string, string | null> }>): ExecutedWrite => ({
    rowsAffected: rows.length,
    changes: { table: 'public.orders', operation, rows },
  });

  test("an updated row's new value other than the one shown for it: a sub-select's answer changed since", () => {
    const preview = [{ affected_rows: 1, id: 1, status_before: 'new', status_after: 'Acme Retail' }];
    expect(beyondPreview({ preview, compared: ['status'] }, changed('update', [{ key: { id: '1' }, after: { status: 'Acme Retail' } }]))).toBeUndefined();
    expect(beyondPreview({ preview, compared: ['status'] }, changed('update', [{ key: { id: '1' }, after: { status: 'refunded-in-full' } }]))).toMatch(/set status of row \["1"\] to a value the approvers did not see/);
    // A value of the statement's own (not compared) is not judged: now() moves.
    expect(beyondPreview({ preview, compared: [] }, changed('update', [{ key: { id: '1' }, after: { status: 'x' } }]))).toBeUndefined();
  });

  test('every form is compared strictly: text that looks like a date, booleans, numbers, timestamps, JSON', () => {
    const one = (shown: unknown, text: string | null) => beyondPreview({ preview: [{ affected_rows: 1, id: 1, v_after: shown }], compared: ['v'] }, changed('update', [{ key: { id: '1' }, after: { v: text } }]));
    expect(one('2024-01-01', '2024-01-01')).toBeUndefined();
    expect(one('2024-01-01', 'refunded_UNSEEN')).toMatch(/did not see/);
    expect(one(false, 'f')).toBeUndefined();
    expect(one(false, 't')).toMatch(/did not see/);
    expect(one(150, '150.00')).toBeUndefined();
    expect(one(150, '151')).toMatch(/did not see/);
    expect(one('2026-01-02T03:04:05.1', '2026-01-02 03:04:05.1')).toBeUndefined();
    expect(one('2026-01-02T03:04:05+00:00', '2026-01-02 03:04:05+00')).toBeUndefined();
    expect(one('2026-01-02T03:04:05', '2026-01-02 03:04:06')).toMatch(/did not see/);
    expect(one({ a: 1 }, '{"a": 1}')).toBeUndefined();
    expect(one({ a: 1 }, '{"a": 2}')).toMatch(/did not see/);
    expect(one(null, null)).toBeUndefined();
    expect(one(null, 'x')).toMatch(/did not see/);
  });

  test('inserted rows are the rows shown, one for one', () => {
    const preview = [{ affected_rows: 2, customer_id: 1, total_cents: 5 }, { affected_rows: 2, customer_id: 1, total_cents: 10 }];
    const rows = (a: string, b: string) => changed('insert', [{ key: { id: '10' }, after: { customer_id: '1', total_cents: a } }, { key: { id: '11' }, after: { customer_id: '1', total_cents: b } }]);
    expect(beyondPreview({ preview, compared: ['total_cents'] }, rows('10', '5'))).toBeUndefined();
    expect(beyondPreview({ preview, compared: ['total_cents'] }, rows('10', '10'))).toMatch(/insert a row the approvers did not see/);
  });

  test('past the 100 rows listed, compared values cannot be checked: not run', () => {
    expect(beyondPreview({ preview: [{ affected_rows: 150, id: 1, v_after: 'x' }], compared: ['v'] }, changed('update', [{ key: { id: '1' }, after: { v: 'x' } }]))).toMatch(/cannot all be checked/);
  });
});
