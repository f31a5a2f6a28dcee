// Startup parameters: identity and harmless settings pass, anything that would change the session is refused.
import { ProxyError } from '../../../src/errors/catalogue';
import { filterStartupParams, parseOptions } from '../../../src/listener/startup-params';

const params = (entries: Record<string, string>) => new Map(Object.entries(entries));

function refusal(entries: Record<string, string>): string | undefined {
  try {
    filterStartupParams(params(entries));
    return undefined;
  } catch (err) {
    return (err as ProxyError).code;
  }
}

test('identity and harmless settings pass under canonical names', () => {
  const r = filterStartupParams(
    params({ user: 'a', database: 'app', application_name: 'x', datestyle: 'ISO', TimeZone: 'UTC', extra_float_digits: '2', client_encoding: 'UTF8' }),
  );
  expect(r).toEqual({
    user: 'a',
    database: 'app',
    settings: { application_name: 'x', DateStyle: 'ISO', TimeZone: 'UTC', extra_float_digits: '2' },
    protocolOptions: [],
  });
});

test('the database defaults to the user name, as in PostgreSQL', () => {
  expect(filterStartupParams(params({ user: 'agent' })).database).toBe('agent');
});

test.each([
  [{ user: 'a', search_path: 'evil' }],
  [{ user: 'a', role: 'postgres' }],
  [{ user: 'a', default_transaction_read_only: 'off' }],
  [{ user: 'a', session_authorization: 'postgres' }],
  [{ user: 'a', statement_timeout: '0' }],
  [{ user: 'a', replication: 'database' }],
  [{ user: 'a', client_encoding: 'SQL_ASCII' }],
  [{ user: 'a', options: '-c search_path=evil' }],
  [{ user: 'a', options: '-csearch_path=evil' }],
  [{ user: 'a', options: '--role=postgres' }],
  [{ user: 'a', options: '-c DateStyle=ISO -c app.tenant_id=2' }],
  [{ user: 'a', options: '-X' }],
  [{ user: 'a', client_encoding: 'utf-16' }],
  [{ user: 'a', client_encoding: 'LATIN1' }],
  [{ user: 'a', client_min_messages: 'debug5' }],
  [{ user: 'a', options: '-c client_min_messages=log' }],
])('%j is refused', (entries) => {
  expect(refusal(entries)).toBe('startup_parameter_not_allowed');
});

test('a missing user is a protocol violation', () => {
  expect(refusal({ database: 'x' })).toBe('protocol_violation');
});

test('options are split as PostgreSQL does, with backslash escapes', () => {
  expect(parseOptions('-c DateStyle=ISO,\\ DMY --extra-float-digits=3')).toEqual([
    ['DateStyle', 'ISO, DMY'],
    ['extra_float_digits', '3'],
  ]);
  const r = filterStartupParams(params({ user: 'a', options: '-c TimeZone=UTC' }));
  expect(r.settings).toEqual({ TimeZone: 'UTC' });
});

test('_pq_ protocol options are collected for NegotiateProtocolVersion', () => {
  expect(filterStartupParams(params({ user: 'a', '_pq_.future': 'x' })).protocolOptions).toEqual(['_pq_.future']);
});

test.each(["'utf-8'", 'UTF-8', 'utf_8', 'Unicode', 'UTF8'])('client_encoding %s is UTF8, compared as PostgreSQL compares encoding names', (value) => {
  expect(filterStartupParams(params({ user: 'a', client_encoding: value })).settings).toEqual({});
});

test.each(['notice', 'WARNING', 'error'])('client_min_messages %s is forwarded', (value) => {
  expect(filterStartupParams(params({ user: 'a', client_min_messages: value })).settings).toEqual({ client_min_messages: value });
});
