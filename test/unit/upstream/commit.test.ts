// Whether the server answered a statement with an error its session outlives: told by the SQLSTATE, never by the (translated) severity.
import { DatabaseError } from 'pg';
import { answeredWithError, CommitFailedError } from '../../../src/upstream/commit';

function serverError(code: string, severity: string): DatabaseError {
  const err = new DatabaseError('message', 0, 'error');
  err.code = code;
  err.severity = severity;
  return err;
}

test('an error the session outlives is an answer, in any language of lc_messages', () => {
  for (const [code, severity] of [
    ['23505', 'ERROR'],
    ['23505', 'FEHLER'],
    ['40001', 'ERREUR'],
    ['57014', 'ERROR'],
    ['42P01', 'ОШИБКА'],
    ['3D000', 'FATAL'],
  ]) {
    expect([code, severity, answeredWithError(serverError(code, severity))]).toEqual([code, severity, true]);
  }
});

test('a session the server ended, or a socket error, leaves the outcome unknown', () => {
  for (const code of ['57P01', '57P02', '57P05', '08006', '08P01', '25P03', '58030', 'XX000']) {
    expect([code, answeredWithError(serverError(code, 'FATAL'))]).toEqual([code, false]);
  }
  const socket = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
  expect(answeredWithError(socket)).toBe(false);
  expect(answeredWithError(new Error('Connection terminated unexpectedly'))).toBe(false);
  expect(answeredWithError(serverError(undefined as unknown as string, 'ERROR'))).toBe(false);
});

test('a COMMIT refused under a translated severity is known not to have happened', () => {
  const refused = new CommitFailedError(serverError('23503', 'FEHLER'));
  expect([refused.outcomeUnknown, refused.sqlstate]).toEqual([false, '23503']);
  expect(refused.message).toMatch(/refused the COMMIT \(23503\): nothing changed/);
  const ended = new CommitFailedError(serverError('57P01', 'FATAL'));
  expect([ended.outcomeUnknown, ended.sqlstate]).toEqual([true, undefined]);
  expect(ended.message).toMatch(/whether it committed is not known/);
});
