// The session's statements and portals change only on PostgreSQL's answers; names are keyed as PostgreSQL keys them.
import { serialize } from 'pg-protocol';
import { nameKey, PreparedTextBudget, SessionState } from '../../../src/session/state';
import type { Portal, Prepared } from '../../../src/session/statements';
import { parseMessage, withResultFormats } from '../../../src/upstream/messages';

const prepared = (name: string, sql: string) => ({ name, sql, agentSql: sql }) as unknown as Prepared;
const portal = (sql: string) => ({ prepared: prepared('', sql) }) as unknown as Portal;
const value = <T>(l: { value?: T; wait?: Promise<void> }) => {
  if (l.wait) throw new Error('expected a value, got a wait');
  return l.value;
};

describe('the text prepared statements hold (session.max_prepared_size, max_prepared_size_total)', () => {
  test('named statements count from their Parse; a failed or skipped one, a Close, DEALLOCATE ALL and the session end give it back', () => {
    const budget = new PreparedTextBudget(100);
    const s = new SessionState(budget);
    const a = s.parse(prepared('a', 'x'.repeat(10))); // 10 + 10
    expect(budget.used).toBe(20);
    expect(s.textFull(30, 45)).toBe('session');
    expect(s.textFull(30, 60)).toBeUndefined();
    a.done();
    expect(budget.used).toBe(20);
    s.endBatch();
    s.parse(prepared('b', 'y'.repeat(5))).failed();
    s.parse(prepared('c', 'z'.repeat(5))).skipped();
    expect(budget.used).toBe(20);
    s.parse(prepared('', 'w'.repeat(50))).done();
    expect(budget.used).toBe(20);
    s.endBatch();
    s.close('S', 'a').done();
    expect(budget.used).toBe(0);
    s.parse(prepared('d', 'v'.repeat(20))).done();
    s.parse(prepared('e', 'u'.repeat(5))).done();
    expect(budget.used).toBe(50);
    s.endBatch();
    s.removeAll('S').done();
    expect(budget.used).toBe(0);
    s.parse(prepared('f', 't'.repeat(10))).done();
    s.dispose();
    s.dispose();
    expect(budget.used).toBe(0);
  });

  test('a named portal keeps its statement (counted once, however many keep it), a cursor its declaration, a held write its parameters; until its transaction ends', () => {
    const budget = new PreparedTextBudget(1000);
    const s = new SessionState(budget);
    const st = prepared('st', 'x'.repeat(10)); // 20
    s.parse(st).done();
    expect(budget.used).toBe(20);
    const bound = (p: Prepared, held = 0) => ({ prepared: p, ...(held ? { held: { params: { values: [Buffer.alloc(held), null] } } } : {}) }) as unknown as Portal;
    expect(s.textOf('P', bound(st))).toBe(0);
    s.bind('p1', bound(st)).done();
    expect(budget.used).toBe(20);
    // The unnamed statement, which no name counts: a portal bound from it keeps it.
    const unnamed = prepared('', 'y'.repeat(5)); // 10
    s.parse(unnamed).done();
    expect(budget.used).toBe(20);
    s.bind('p2', bound(unnamed)).done();
    s.bind('p3', bound(unnamed)).done();
    expect(budget.used).toBe(30);
    s.bind('h1', bound(st, 100)).done();
    expect(budget.used).toBe(130);
    s.bind('c1', { cursor: { declaration: { sql: 'abc', agentSql: 'de' } } } as unknown as Portal).done();
    expect(budget.used).toBe(135);
    // Closed, the statement stays counted while portals keep it; their transaction's end gives it all back.
    s.endBatch();
    s.close('S', 'st').done();
    expect(budget.used).toBe(135);
    s.transactionEnded();
    expect(budget.used).toBe(0);
    s.bind('h3', bound(unnamed, 70)).done();
    expect(budget.used).toBe(80);
    s.transactionFailed();
    expect(budget.used).toBe(0);
  });

  test('a name replaced in the same batch (Close, then Parse of the name) counts the new statement, and gives the old one back once closed', () => {
    const budget = new PreparedTextBudget(1000);
    const s = new SessionState(budget);
    s.parse(prepared('a', 'x'.repeat(10))).done();
    s.endBatch();
    const close = s.close('S', 'a');
    const again = s.parse(prepared('a', 'y'.repeat(100)));
    expect(budget.used).toBe(220);
    close.done();
    again.done();
    expect(budget.used).toBe(200);
    s.dispose();
    expect(budget.used).toBe(0);
  });

  test('the process budget is shared by the sessions', () => {
    const budget = new PreparedTextBudget(100);
    const one = new SessionState(budget);
    const two = new SessionState(budget);
    one.parse(prepared('a', 'x'.repeat(30))).done();
    expect(two.textFull(50, 1000)).toBe('process');
    expect(two.textFull(40, 1000)).toBeUndefined();
    one.dispose();
    expect(two.textFull(90, 1000)).toBeUndefined();
  });
});

describe('nameKey', () => {
  test.each([
    ['', ''],
    ['s1', 's1'],
    ['x'.repeat(63), 'x'.repeat(63)],
  ])('%j is its own key', (name, key) => expect(nameKey(name)).toBe(key));

  test('names cut to the same 63 bytes share a key; others do not', () => {
    expect(nameKey('x'.repeat(63) + 'a')).toBe(nameKey('x'.repeat(63)));
    expect(nameKey('x'.repeat(62) + 'é')).toBe(nameKey('x'.repeat(62) + 'è'));
    expect(nameKey('x'.repeat(61) + 'é')).not.toBe(nameKey('x'.repeat(61) + 'è'));
    expect(nameKey('é')).not.toBe(nameKey('è'));
  });
});

describe('SessionState', () => {
  test('a Parse shows to later messages of its batch at once, to the table only when confirmed', () => {
    const s = new SessionState();
    const effect = s.parse(prepared('a', 'one'));
    expect(value(s.statement('a'))?.sql).toBe('one');
    expect(s.size.statements).toBe(0);
    effect.done();
    expect(s.size.statements).toBe(1);
  });

  test('a message of a later batch waits for an unanswered change of its name, and sees the answer', async () => {
    const s = new SessionState();
    s.parse(prepared('a', 'old')).done();
    const again = s.parse(prepared('a', 'new'));
    s.endBatch();
    const lookup = s.statement('a');
    expect(lookup.wait).toBeDefined();
    again.failed(); // 42P05: the name keeps the old statement
    await lookup.wait;
    expect(value(s.statement('a'))?.sql).toBe('old');
  });

  test('a failed or skipped named Parse keeps the old statement; a failed unnamed one leaves none', () => {
    const s = new SessionState();
    s.parse(prepared('a', 'old')).done();
    s.parse(prepared('', 'old')).done();
    s.parse(prepared('a', 'new')).skipped();
    s.parse(prepared('', 'new')).failed();
    expect(value(s.statement('a'))?.sql).toBe('old');
    expect(value(s.statement(''))).toBeUndefined();
  });

  test('a refused named Parse is invisible; a refused unnamed one drops the unnamed statement', () => {
    const s = new SessionState();
    s.parse(prepared('a', 'kept')).done();
    s.parse(prepared('', 'kept')).done();
    const named = s.refusedParse('a');
    expect(value(s.statement('a'))?.sql).toBe('kept');
    named.failed();
    s.refusedParse('').failed();
    expect(value(s.statement('a'))?.sql).toBe('kept');
    expect(value(s.statement(''))).toBeUndefined();
  });

  test('a Query drops the unnamed statement and portal, whatever its outcome', () => {
    const s = new SessionState();
    s.parse(prepared('', 'x')).done();
    s.bind('', portal('x')).done();
    s.query().failed();
    expect(value(s.statement(''))).toBeUndefined();
    expect(value(s.portal(''))).toBeUndefined();
  });

  test('portals: a failed Bind leaves none; errors and idle ReadyForQuery end them; Close is applied on CloseComplete', () => {
    const s = new SessionState();
    s.bind('p', portal('x')).done();
    s.bind('p', portal('y')).failed();
    expect(value(s.portal('p'))).toBeUndefined();
    s.bind('q', portal('x')).done();
    s.transactionFailed();
    expect(value(s.portal('q'))).toBeUndefined();
    s.bind('r', portal('x')).done();
    s.transactionEnded();
    expect(value(s.portal('r'))).toBeUndefined();
    s.parse(prepared('c', 'x')).done();
    const close = s.close('S', 'c');
    s.endBatch();
    expect(s.statement('c').wait).toBeDefined();
    close.done();
    expect(value(s.statement('c'))).toBeUndefined();
  });

  test('the first answer counts; later calls change nothing', () => {
    const s = new SessionState();
    const e = s.parse(prepared('a', 'x'));
    e.skipped();
    e.done();
    expect(value(s.statement('a'))).toBeUndefined();
  });
});

describe('parseMessage', () => {
  test.each([
    ['', 'SELECT 1', []],
    ['s', 'SELECT $1, $2', [23, 25]],
    ['né', "SELECT 'ü'", [4294967295]],
  ])('writes the same bytes as pg-protocol for %j', (name, text, types) => {
    expect(parseMessage(name, text, types)).toEqual(serialize.parse({ name, text, types }));
  });
});

describe('withResultFormats', () => {
  test('replaces the tail of a Bind and keeps the rest byte for byte', () => {
    const params = [Buffer.from('42'), null, Buffer.from('x')];
    const before = serialize.bind({ portal: 'p', statement: 's', values: ['42', null, 'x'] });
    const after = withResultFormats({ portal: 'p', statement: 's', paramFormats: [0, 0, 0], params, raw: before }, [1, 0, 0]);
    const head = before.length - 2 - 2; // the agent's Bind asked for one format code (text)
    expect(after.subarray(5, head)).toEqual(before.subarray(5, head));
    expect(after.readInt32BE(1)).toBe(after.length - 1);
    expect([...after.subarray(head)]).toEqual([0, 3, 0, 1, 0, 0, 0, 0]);
  });
});
