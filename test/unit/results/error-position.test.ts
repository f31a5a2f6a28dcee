import { errorResponse } from '../../../src/protocol/backend/serializer';
import { mapPosition, withAgentPosition } from '../../../src/results/error-position';

const SENT = "SELECT name FROM ( SELECT id, name FROM public.customers WHERE tenant_id = '1'::int OFFSET 0 ) AS customers WHERE nme = 1 LIMIT 201";
const AGENT = 'select name from customers where NME = 1';

function fields(frame: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 5;
  while (frame[at] !== 0) {
    const end = frame.indexOf(0, at + 1);
    out[String.fromCharCode(frame[at])] = frame.subarray(at + 1, end).toString('utf8');
    at = end + 1;
  }
  expect(frame.readUInt32BE(1)).toBe(frame.length - 1);
  return out;
}

describe('mapPosition', () => {
  test('moves an identifier to its only occurrence in the agent’s text, case-folded', () => {
    expect(mapPosition(SENT.indexOf('nme') + 1, SENT, AGENT)).toBe(AGENT.indexOf('NME') + 1);
  });

  test('counts characters, not bytes or UTF-16 units', () => {
    const agent = "select '😀é' || nme from t";
    expect(mapPosition(SENT.indexOf('nme') + 1, SENT, agent)).toBe(Array.from(agent).indexOf('n') + 1);
  });

  test('matches whole words only, and quoted identifiers exactly', () => {
    expect(mapPosition(SENT.indexOf('nme') + 1, SENT, 'select nmex, xnme, nme from t')).toBe(20);
    const sent = 'SELECT "Weird Name" FROM t';
    expect(mapPosition(8, sent, 'select "Weird Name" from t')).toBe(8);
    expect(mapPosition(8, sent, 'select "weird name" from t')).toBeUndefined();
  });

  test('gives up when the word is ambiguous, absent, or the position is out of range', () => {
    expect(mapPosition(SENT.indexOf('name') + 1, SENT, 'select name from customers where name = 1')).toBeUndefined();
    expect(mapPosition(SENT.indexOf('OFFSET') + 1, SENT, AGENT)).toBeUndefined();
    expect(mapPosition(0, SENT, AGENT)).toBeUndefined();
    expect(mapPosition(SENT.length + 1, SENT, AGENT)).toBeUndefined();
    expect(mapPosition(SENT.indexOf('(') + 1, SENT, AGENT)).toBeUndefined();
  });
});

describe('withAgentPosition', () => {
  const base = { severity: 'ERROR', code: '42703', message: 'column "nme" does not exist', hint: 'Perhaps you meant "name".' };

  test('rewrites P and keeps every other field', () => {
    const frame = errorResponse({ ...base, position: String(SENT.indexOf('nme') + 1) });
    expect(fields(withAgentPosition(frame, SENT, AGENT))).toEqual({
      S: 'ERROR',
      V: 'ERROR',
      C: '42703',
      M: base.message,
      H: base.hint,
      P: String(AGENT.indexOf('NME') + 1),
    });
  });

  test('drops P when it cannot be placed', () => {
    const frame = errorResponse({ ...base, position: String(SENT.indexOf('OFFSET') + 1) });
    const out = fields(withAgentPosition(frame, SENT, AGENT));
    expect(out.P).toBeUndefined();
    expect(out.M).toBe(base.message);
  });

  test('leaves frames without a position untouched', () => {
    const frame = errorResponse(base);
    expect(withAgentPosition(frame, SENT, AGENT)).toBe(frame);
  });

  test('a frame whose last field is unterminated is returned as it came', () => {
    const frame = Buffer.from([0x45, 0, 0, 0, 7, 0x50, 0x31, 0x32]);
    expect(withAgentPosition(frame, SENT, AGENT)).toBe(frame);
  });
});
