// Golden cases for transaction control and SET/SHOW/RESET: the allow-lists and the statement_timeout bound.
import { runGolden, type Golden } from './golden';

const cases: Golden[] = [
  // Transaction control.
  { sql: 'BEGIN', out: 'BEGIN', kinds: ['transaction'] },
  { sql: 'BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE', out: 'BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE' },
  { sql: 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ', out: 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ' },
  { sql: 'BEGIN NOT DEFERRABLE', out: 'BEGIN NOT DEFERRABLE' },
  { sql: 'COMMIT', out: 'COMMIT', kinds: ['transaction'] },
  { sql: 'END', out: 'COMMIT' },
  { sql: 'ABORT', out: 'ROLLBACK' },
  { sql: 'COMMIT AND CHAIN', out: 'COMMIT AND CHAIN' },
  { sql: 'ROLLBACK AND CHAIN', out: 'ROLLBACK AND CHAIN' },
  { sql: 'COMMIT AND NO CHAIN', out: 'COMMIT' },
  { sql: 'SAVEPOINT sp1', out: 'SAVEPOINT sp1' },
  { sql: 'RELEASE SAVEPOINT sp1', out: 'RELEASE SAVEPOINT sp1' },
  { sql: 'ROLLBACK TO SAVEPOINT sp1', out: 'ROLLBACK TO sp1' },
  { sql: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', out: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', kinds: ['transaction'] },
  { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', out: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', kinds: ['session'] },
  { sql: 'BEGIN READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
  { sql: 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
  { sql: 'SET TRANSACTION READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
  { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
  { sql: "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", err: 'setting_not_allowed' },
  { sql: "PREPARE TRANSACTION 'tx1'", err: 'statement_not_allowed', message: 'PREPARE TRANSACTION is not allowed' },
  { sql: "COMMIT PREPARED 'tx1'", err: 'statement_not_allowed', message: 'COMMIT PREPARED is not allowed' },
  { sql: "ROLLBACK PREPARED 'tx1'", err: 'statement_not_allowed', message: 'ROLLBACK PREPARED is not allowed' },

  // SET / SET LOCAL / RESET of the allow-list.
  { sql: "SET application_name = 'report bot'", out: "SET application_name TO 'report bot'", kinds: ['session'] },
  { sql: 'SET DateStyle = ISO, MDY', out: 'SET datestyle TO iso, mdy' },
  { sql: "SET TIME ZONE 'Europe/Paris'", out: "SET TIME ZONE 'Europe/Paris'" },
  { sql: "SET \"TimeZone\" = 'UTC'", out: "SET \"TimeZone\" TO 'UTC'" },
  { sql: 'SET intervalstyle = iso_8601', out: 'SET intervalstyle TO iso_8601' },
  { sql: 'SET extra_float_digits = 3', out: 'SET extra_float_digits TO 3' },
  { sql: "SET bytea_output = 'hex'", out: 'SET bytea_output TO hex' },
  { sql: 'SET client_min_messages TO warning', out: 'SET client_min_messages TO warning' },
  { sql: "SET client_min_messages = 'ERROR'", out: "SET client_min_messages TO 'ERROR'" },
  { sql: 'SET LOCAL client_min_messages TO notice', out: 'SET LOCAL client_min_messages TO notice' },
  { sql: 'SET client_min_messages TO DEFAULT', out: 'SET client_min_messages TO DEFAULT' },
  { sql: 'RESET client_min_messages', out: 'RESET client_min_messages' },
  // Levels below NOTICE would send the proxy's session's internal DEBUG/LOG messages to the agent.
  { sql: 'SET client_min_messages = debug5', err: 'setting_not_allowed', message: 'client_min_messages "debug5" is not allowed' },
  { sql: "SET client_min_messages TO 'DEBUG1'", err: 'setting_not_allowed' },
  { sql: 'SET client_min_messages TO debug', err: 'setting_not_allowed' },
  { sql: 'SET LOCAL client_min_messages = log', err: 'setting_not_allowed' },
  { sql: 'SET client_min_messages = info', err: 'setting_not_allowed' },
  { sql: 'SET client_min_messages = 1', err: 'setting_not_allowed' },
  { sql: "SET LOCAL lock_timeout = '5s'", out: "SET LOCAL lock_timeout TO '5s'" },
  // idle_in_transaction_session_timeout: the database's own unless the policy sets a bound (below).
  { sql: 'SET idle_in_transaction_session_timeout = 60000', err: 'setting_not_allowed', message: "idle_in_transaction_session_timeout is the database's" },
  { sql: 'SET idle_in_transaction_session_timeout = 0', err: 'setting_not_allowed' },
  { sql: 'RESET idle_in_transaction_session_timeout', out: 'RESET idle_in_transaction_session_timeout' },
  { sql: 'SET idle_in_transaction_session_timeout TO DEFAULT', out: 'SET idle_in_transaction_session_timeout TO DEFAULT' },
  { sql: 'RESET timezone', out: 'RESET timezone' },
  { sql: 'SET datestyle TO DEFAULT', out: 'SET datestyle TO DEFAULT' },

  // statement_timeout: lower only, against a bound of 3000 ms.
  { sql: 'set statement_timeout=1000', out: 'SET statement_timeout TO 1000', kinds: ['session'] },
  { sql: "SET statement_timeout = '3s'", out: "SET statement_timeout TO '3s'" },
  { sql: "SET LOCAL statement_timeout = '2500ms'", out: "SET LOCAL statement_timeout TO '2500ms'" },
  { sql: "SET statement_timeout = '2.9999s'", out: "SET statement_timeout TO '2.9999s'" }, // rounds to 3000
  { sql: 'SET statement_timeout TO DEFAULT', out: 'SET statement_timeout TO DEFAULT' },
  { sql: 'RESET statement_timeout', out: 'RESET statement_timeout' },
  { sql: "SET LOCAL statement_timeout = '10min'", err: 'statement_timeout_raise', message: '600000 ms' },
  { sql: 'SET statement_timeout = 3001', err: 'statement_timeout_raise' },
  { sql: 'SET statement_timeout = 0', err: 'statement_timeout_raise', message: '0 would disable it' },
  { sql: "SET statement_timeout = '0'", err: 'statement_timeout_raise' },
  { sql: "SET statement_timeout = '0.00001d'", err: 'statement_timeout_raise' }, // rounds to 0 h: disabled
  { sql: "SET statement_timeout = '1h'", err: 'statement_timeout_raise' },
  { sql: "SET statement_timeout = '0x1000'", err: 'statement_timeout_raise' }, // 4096, hex like strtol
  { sql: "SET statement_timeout = '10MIN'", err: 'setting_not_allowed', message: 'invalid value' },
  { sql: "SET statement_timeout = 'abc'", err: 'setting_not_allowed', message: 'invalid value' },
  { sql: 'SET statement_timeout = -5', err: 'setting_not_allowed', message: 'invalid value' },
  { sql: 'SET statement_timeout = 100, 200', err: 'setting_not_allowed', message: 'invalid value' },
  { sql: "SET statement_timeout = '10min'", out: "SET statement_timeout TO '10min'", ctx: { statementTimeoutMaxMs: undefined } },
  { sql: 'SET statement_timeout = 0', out: 'SET statement_timeout TO 0', ctx: { statementTimeoutMaxMs: undefined } },

  // Settings that belong to the proxy.
  { sql: 'SET ROLE postgres', err: 'setting_not_allowed', message: 'SET ROLE is not allowed' },
  { sql: 'RESET ROLE', err: 'setting_not_allowed', message: 'RESET ROLE' },
  { sql: 'SET SESSION AUTHORIZATION postgres', err: 'setting_not_allowed', message: 'SET SESSION AUTHORIZATION' },
  { sql: 'SET SESSION AUTHORIZATION DEFAULT', err: 'setting_not_allowed' },
  { sql: 'SET search_path = evil', err: 'setting_not_allowed', message: 'SET search_path is not allowed' },
  { sql: "SET SCHEMA 'evil'", err: 'setting_not_allowed', message: 'search_path' },
  { sql: 'SET LOCAL search_path TO public, evil', err: 'setting_not_allowed', message: 'SET LOCAL search_path' },
  { sql: "SET client_encoding = 'LATIN1'", err: 'setting_not_allowed' },
  { sql: "SET NAMES 'SQL_ASCII'", err: 'setting_not_allowed', message: 'client_encoding' },
  { sql: 'SET standard_conforming_strings = off', err: 'setting_not_allowed' },
  { sql: 'SET default_transaction_read_only = off', err: 'setting_not_allowed' },
  { sql: 'SET transaction_read_only = off', err: 'setting_not_allowed' },
  { sql: 'SET row_security = off', err: 'setting_not_allowed' },
  { sql: 'SET app.tenant_id = 7', err: 'setting_not_allowed', message: 'app.tenant_id' },
  { sql: 'SET "app.tenant_id" = \'7\'', err: 'setting_not_allowed' },
  { sql: 'RESET app.tenant_id', err: 'setting_not_allowed' },
  { sql: "SET work_mem = '1GB'", err: 'setting_not_allowed' },
  { sql: 'SET constructor = 1', err: 'setting_not_allowed', message: 'SET constructor is not allowed' },
  { sql: 'SET "STATEMENT_TIMEOUT" = 0', err: 'statement_timeout_raise' }, // setting names are case-insensitive
  { sql: 'SET statement_timeout = 0.5', err: 'statement_timeout_raise' }, // rounds to 0

  // SHOW: the allow-list plus facts drivers ask for.
  { sql: 'SHOW statement_timeout', out: 'SHOW statement_timeout', kinds: ['session'] },
  { sql: 'SHOW server_version', out: 'SHOW server_version' },
  { sql: 'SHOW server_version_num', out: 'SHOW server_version_num' },
  { sql: 'SHOW client_encoding', out: 'SHOW client_encoding' },
  { sql: 'SHOW standard_conforming_strings', out: 'SHOW standard_conforming_strings' },
  { sql: 'SHOW TRANSACTION ISOLATION LEVEL', out: 'SHOW transaction_isolation' },
  { sql: 'SHOW transaction_read_only', out: 'SHOW transaction_read_only' },
  { sql: 'SHOW TIME ZONE', out: 'SHOW timezone' },
  { sql: 'SHOW max_identifier_length', out: 'SHOW max_identifier_length' },
  { sql: 'SHOW integer_datetimes', out: 'SHOW integer_datetimes' },
  { sql: 'SHOW ALL', err: 'setting_not_allowed', message: 'SHOW ALL is not allowed' },
  { sql: 'SHOW is_superuser', err: 'setting_not_allowed' },
  { sql: 'SHOW app.tenant_id', err: 'setting_not_allowed' },
  { sql: 'SHOW data_directory', err: 'setting_not_allowed' },
];

runGolden(cases, { statementTimeoutMaxMs: 3000 });

describe('idle_in_transaction_session_timeout under a policy bound of 60 s: lower only, never 0', () => {
  runGolden(
    [
      { sql: 'SET idle_in_transaction_session_timeout = 60000', out: 'SET idle_in_transaction_session_timeout TO 60000', kinds: ['session'] },
      { sql: "SET LOCAL idle_in_transaction_session_timeout = '10s'", out: "SET LOCAL idle_in_transaction_session_timeout TO '10s'" },
      { sql: "SET idle_in_transaction_session_timeout = '1min'", out: "SET idle_in_transaction_session_timeout TO '1min'" },
      { sql: "SET idle_in_transaction_session_timeout = '1.5min'", err: 'setting_not_allowed', message: '90000 ms is above the limit' },
      { sql: 'SET idle_in_transaction_session_timeout = 0', err: 'setting_not_allowed', message: '0 would disable it' },
      { sql: "SET idle_in_transaction_session_timeout = '0x7fffffff'", err: 'setting_not_allowed' },
      { sql: "SET idle_in_transaction_session_timeout = '-1'", err: 'setting_not_allowed' },
      { sql: "SET idle_in_transaction_session_timeout = 'forever'", err: 'setting_not_allowed' },
      { sql: 'SET idle_in_transaction_session_timeout = 100, 200', err: 'setting_not_allowed' },
      { sql: 'RESET idle_in_transaction_session_timeout', out: 'RESET idle_in_transaction_session_timeout' },
    ],
    { statementTimeoutMaxMs: 3000, idleInTransactionMaxMs: 60_000 },
  );
});
