// Golden cases for what drivers, ORMs and pools send on their own: connect-time functions, RESET ALL,
// SHOW of what they read, every spelling of SET TIME ZONE, isolation levels; and what stays refused.
import { deparseVerified } from '../../../src/analysis/deparse';
import { parseStatements } from '../../../src/analysis/parser';
import { runGolden, type Golden } from './golden';
import { scopeFor } from './expression-cases';

const principal = { user: 'agent', subject: 'agent', tenantId: '1', roles: [], authMethod: 'password' as const, database: 'agentdb' };

describe('connect-time and pool-reset functions', () => {
  const cases: Golden[] = [
    // SQLAlchemy's connect; the pinned search_path is PostgreSQL's to resolve.
    { sql: 'select current_schema()', out: 'SELECT "current_schema"() LIMIT 101', kinds: ['read'] },
    { sql: 'SELECT CURRENT_SCHEMA', out: 'SELECT CURRENT_SCHEMA LIMIT 101' },
    { sql: 'SELECT pg_catalog.current_schema()', out: 'SELECT pg_catalog.current_schema() LIMIT 101' },
    { sql: 'SELECT current_schemas(true)', out: 'SELECT pg_catalog.array_remove(pg_catalog.current_schemas(true), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)) AS current_schemas LIMIT 101' },
    { sql: 'SELECT current_schemas(false)', out: 'SELECT pg_catalog.array_remove(pg_catalog.current_schemas(false), CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name)) AS current_schemas LIMIT 101' },
    // TypeORM: the database the agent connected to, never the upstream one ("app" in this catalog).
    { sql: 'SELECT current_database()', out: "SELECT CAST('agentdb' AS name) AS current_database LIMIT 101" },
    { sql: 'SELECT current_database(), current_schema()', out: `SELECT CAST('agentdb' AS name) AS current_database, "current_schema"() LIMIT 101` },
    // The answer keeps the column name PostgreSQL gives the call: TypeORM reads it by that name.
    { sql: 'SELECT * FROM current_database()', out: "SELECT * FROM CAST('agentdb' AS name) AS current_database LIMIT 101" },
    { sql: 'SELECT * FROM current_database() AS d', out: "SELECT * FROM CAST('agentdb' AS name) AS d LIMIT 101" },
    { sql: 'SELECT * FROM current_database() WITH ORDINALITY', out: "SELECT * FROM CAST('agentdb' AS name) WITH ORDINALITY AS current_database LIMIT 101" },
    { sql: 'SELECT current_database()::text COLLATE "C"', out: `SELECT CAST(CAST('agentdb' AS name) AS text) COLLATE "C" AS current_database LIMIT 101` },
    { sql: 'SELECT upper(current_database())', out: "SELECT upper(CAST('agentdb' AS name)) LIMIT 101" },
    { sql: 'SELECT (SELECT current_database())', out: "SELECT (SELECT CAST('agentdb' AS name) AS current_database) LIMIT 101" },
    { sql: 'SELECT * FROM current_schema()', out: 'SELECT * FROM "current_schema"() LIMIT 101' },
    { sql: 'SELECT pg_catalog.current_database() AS db', out: "SELECT CAST('agentdb' AS name) AS db LIMIT 101" },
    {
      sql: 'SELECT id FROM orders WHERE current_database() IS NOT NULL LIMIT 1',
      out: "SELECT id FROM ( SELECT id, tenant_id, customer_id, status, total, created_at, tags FROM public.orders WHERE tenant_id = '1'::int OFFSET 0 ) AS orders WHERE CAST('agentdb' AS name) IS NOT NULL LIMIT LEAST(1, 101)",
    },
    // Attribute notation calls f(q): current_database has no one-argument form, so PostgreSQL
    // answers that the column does not exist. `(true).f` the deparser cannot print: refused.
    { sql: 'SELECT c.current_database FROM customers c', out: "SELECT c.current_database FROM ( SELECT id, tenant_id, name, email FROM public.customers WHERE tenant_id = '1'::int OFFSET 0 ) AS c LIMIT 101" },
    { sql: 'SELECT (true).current_schemas', err: 'statement_not_understood' },
    { sql: 'SELECT c.pg_advisory_unlock FROM customers c', err: 'column_not_found' },
    // Drivers parse it; the server_version ParameterStatus already says as much.
    { sql: 'SELECT version()', out: 'SELECT version() LIMIT 101' },
    // asyncpg's pool reset, whole.
    {
      sql: 'SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL',
      out: 'SELECT pg_advisory_unlock_all() LIMIT 101; CLOSE ALL; UNLISTEN *; RESET ALL',
      kinds: ['read', 'session', 'session', 'session'],
      multi: true,
    },
    { sql: 'SELECT pg_advisory_unlock_all()', out: 'SELECT pg_advisory_unlock_all() LIMIT 101' },
    // Every other advisory function stays refused: only unlocking everything is harmless.
    { sql: 'SELECT pg_advisory_unlock(1)', err: 'function_not_allowed', message: 'pg_advisory_unlock()' },
    { sql: 'SELECT pg_advisory_lock(1)', err: 'function_not_allowed' },
    { sql: 'SELECT pg_advisory_xact_lock_shared(1)', err: 'function_not_allowed' },
    { sql: 'SELECT pg_try_advisory_lock(1, 2)', err: 'function_not_allowed' },
    { sql: 'SELECT pg_advisory_unlock_all(); SELECT pg_advisory_lock(1)', err: 'function_not_allowed', multi: true },
    // Still refused: settings, the session's identity, CURRENT_CATALOG.
    { sql: "SELECT set_config('search_path', 'evil', false)", err: 'function_not_allowed', message: 'set_config' },
    { sql: "SELECT set_config('statement_timeout', '0', true)", err: 'function_not_allowed' },
    { sql: "SELECT current_setting('search_path')", err: 'function_not_allowed' },
    // The session's identity is the agent's user name, as session_authorization told it at login.
    { sql: 'SELECT current_user', out: "SELECT CAST('agent' AS name) AS \"current_user\" LIMIT 101" },
    { sql: 'SELECT session_user::text AS who', out: "SELECT CAST(CAST('agent' AS name) AS text) AS who LIMIT 101" },
    { sql: 'SELECT CURRENT_CATALOG', err: 'function_not_allowed' },
  ];
  runGolden(cases, { scope: scopeFor(), principal, writeGate: () => false, captureWrites: false });
});

describe('settings drivers read and reset', () => {
  const cases: Golden[] = [
    // Pool resets (psycopg, asyncpg): every setting back to its session default, the proxy's startup values.
    { sql: 'RESET ALL', out: 'RESET ALL', kinds: ['session'] },
    { sql: 'reset all', out: 'RESET ALL' },
    { sql: 'RESET statement_timeout', out: 'RESET statement_timeout' },
    { sql: 'RESET TIME ZONE', out: 'RESET timezone' },
    { sql: 'RESET datestyle', out: 'RESET datestyle' },
    { sql: 'RESET default_transaction_isolation', out: 'RESET default_transaction_isolation' },
    { sql: 'DISCARD ALL', out: 'DISCARD ALL' },
    // RESET of what the proxy owns stays refused: it is not the agent's to touch, even back to the default.
    { sql: 'RESET search_path', err: 'setting_not_allowed', message: 'RESET search_path' },
    { sql: 'RESET role', err: 'setting_not_allowed' },
    { sql: 'RESET SESSION AUTHORIZATION', err: 'setting_not_allowed' },
    { sql: 'RESET default_transaction_read_only', err: 'setting_not_allowed' },
    { sql: 'RESET standard_conforming_strings', err: 'setting_not_allowed' },
    { sql: 'RESET client_encoding', err: 'setting_not_allowed' },
    { sql: 'RESET app.tenant_id', err: 'setting_not_allowed' },
    // SHOW: what psql, JDBC, SQLAlchemy and the ORMs read.
    { sql: 'SHOW search_path', out: 'SHOW search_path', kinds: ['session'] },
    { sql: 'SHOW SEARCH_PATH', out: 'SHOW search_path' },
    { sql: 'SHOW server_version', out: 'SHOW server_version' },
    { sql: 'SHOW transaction_isolation', out: 'SHOW transaction_isolation' },
    { sql: 'SHOW TRANSACTION ISOLATION LEVEL', out: 'SHOW transaction_isolation' },
    { sql: 'SHOW default_transaction_isolation', out: 'SHOW default_transaction_isolation' },
    { sql: 'SHOW standard_conforming_strings', out: 'SHOW standard_conforming_strings' },
    { sql: 'SHOW TimeZone', out: 'SHOW timezone' },
    { sql: 'SHOW "TimeZone"', out: 'SHOW "TimeZone"' },
    { sql: 'SHOW TIME ZONE', out: 'SHOW timezone' },
    { sql: 'SHOW client_encoding', out: 'SHOW client_encoding' },
    { sql: 'SHOW DateStyle', out: 'SHOW datestyle' },
    { sql: 'SHOW "DateStyle"', out: 'SHOW "DateStyle"' },
    { sql: 'SHOW integer_datetimes', out: 'SHOW integer_datetimes' },
    { sql: 'SHOW max_identifier_length', out: 'SHOW max_identifier_length' },
    // SHOW ALL lists every server setting; the others are the proxy's or the server's business.
    { sql: 'SHOW ALL', err: 'setting_not_allowed', message: 'SHOW ALL is not allowed' },
    { sql: 'SHOW "ALL"', err: 'setting_not_allowed', message: 'SHOW ALL is not allowed' },
    { sql: 'SHOW "All"', err: 'setting_not_allowed' },
    { sql: 'SHOW SESSION AUTHORIZATION', err: 'setting_not_allowed' },
    { sql: 'SHOW role', err: 'setting_not_allowed' },
    { sql: 'SHOW data_directory', err: 'setting_not_allowed' },
    { sql: 'SHOW "Data_Directory"', err: 'setting_not_allowed' },
    { sql: 'SHOW config_file', err: 'setting_not_allowed' },
    { sql: 'SHOW "app.tenant_id"', err: 'setting_not_allowed' },
    // A value with a quote in it is printed with the quote doubled, and stays one value.
    { sql: "SET application_name = 'O''Brien''s agent'", out: "SET application_name TO 'O''Brien''s agent'" },
    { sql: "SET LOCAL application_name TO 'a''b'", out: "SET LOCAL application_name TO 'a''b'" },
    { sql: "SET application_name = 'x'';SET search_path = evil;--'", out: "SET application_name TO 'x'';SET search_path = evil;--'", kinds: ['session'] },
    { sql: "SET \"Application_Name\" = 'x''y'", out: "SET \"Application_Name\" TO 'x''y'" },
    { sql: "SET search_path = 'it''s'", err: 'setting_not_allowed' },
  ];
  runGolden(cases, { statementTimeoutMaxMs: 3000 });
});

describe('SET TIME ZONE in every grammatical form', () => {
  const cases: Golden[] = [
    { sql: "SET TIME ZONE 'UTC'", out: "SET TIME ZONE 'UTC'", kinds: ['session'] },
    { sql: "SET TIME ZONE 'America/New_York'", out: "SET TIME ZONE 'America/New_York'" },
    { sql: "SET TIME ZONE '+02:00'", out: "SET TIME ZONE '+02:00'" },
    { sql: 'SET TIME ZONE UTC', out: 'SET TIME ZONE utc' },
    // LOCAL and DEFAULT are the same node (the session default).
    { sql: 'SET TIME ZONE LOCAL', out: 'SET TIME ZONE DEFAULT' },
    { sql: 'SET TIME ZONE DEFAULT', out: 'SET TIME ZONE DEFAULT' },
    { sql: 'SET LOCAL TIME ZONE LOCAL', out: 'SET LOCAL TIME ZONE DEFAULT' },
    // Sequelize's connect, and the other interval forms zone_value takes.
    { sql: "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", out: "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE" },
    { sql: "SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE", out: "SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE" },
    { sql: "SET TIME ZONE INTERVAL '5' HOUR", out: "SET TIME ZONE INTERVAL '5' HOUR" },
    { sql: "SET TIME ZONE INTERVAL '-08:00'", out: "SET TIME ZONE INTERVAL '-08:00'" },
    { sql: "SET TIME ZONE INTERVAL(3) '+00:00:00.1234'", out: "SET TIME ZONE INTERVAL(3) '+00:00:00.1234'" },
    { sql: "SET TIME ZONE INTERVAL(0) '+01:00'", out: "SET TIME ZONE INTERVAL(0) '+01:00'" },
    { sql: "SET LOCAL TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE", out: "SET LOCAL TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE" },
    { sql: "SET SESSION TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE", out: "SET TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE" },
    // Numbers: hours east of UTC.
    { sql: 'SET TIME ZONE -7', out: 'SET TIME ZONE -7' },
    { sql: 'SET TIME ZONE 3.5', out: 'SET TIME ZONE 3.5' },
    { sql: 'SET TIME ZONE +5', out: 'SET TIME ZONE 5' },
    // The setting's own name, in every SET form.
    { sql: "SET timezone TO 'UTC'", out: "SET timezone TO 'UTC'" },
    { sql: "SET timezone = 'Europe/Paris'", out: "SET timezone TO 'Europe/Paris'" },
    { sql: "SET \"TimeZone\" TO 'UTC'", out: "SET \"TimeZone\" TO 'UTC'" },
    { sql: 'SET timezone TO DEFAULT', out: 'SET timezone TO DEFAULT' },
    { sql: "SET SESSION TIME ZONE 'UTC'", out: "SET TIME ZONE 'UTC'" },
    { sql: "SET SESSION timezone TO 'UTC'", out: "SET timezone TO 'UTC'" },
    { sql: "SET LOCAL TIME ZONE 'UTC'", out: "SET LOCAL TIME ZONE 'UTC'" },
    { sql: "SET LOCAL timezone = 'UTC'", out: "SET LOCAL timezone TO 'UTC'" },
    // The interval text is a string constant, printed escaped: nothing rides along with it.
    { sql: "SET TIME ZONE INTERVAL 'it''s' HOUR", out: "SET TIME ZONE INTERVAL 'it''s' HOUR" },
    { sql: "SET TIME ZONE 'it''s'", out: "SET TIME ZONE 'it''s'" },
    { sql: "SET TIME ZONE INTERVAL '1''; RESET ALL; --' HOUR", out: "SET TIME ZONE INTERVAL '1''; RESET ALL; --' HOUR", kinds: ['session'] },
    { sql: "SET TIME ZONE INTERVAL 'a\\b' HOUR", out: "SET TIME ZONE INTERVAL E'a\\\\b' HOUR" },
    { sql: "SET TIME ZONE INTERVAL '1' HOUR; SET search_path = evil", err: 'setting_not_allowed', multi: true },
    // What the grammar itself refuses.
    { sql: "SET TIME ZONE INTERVAL '1' DAY", err: 'syntax_error' },
    { sql: "SET TIME ZONE INTERVAL '1' HOUR TO SECOND", err: 'syntax_error' },
    { sql: 'SET TIME ZONE ARRAY[1]', err: 'syntax_error' },
    { sql: "SET TIME ZONE '1'::interval", err: 'syntax_error' },
  ];
  runGolden(cases);
});

describe('casts to pg_catalog types keep their schema (psql \\dT+, \\dp)', () => {
  const cases: Golden[] = [
    // An unqualified name is resolved by search_path: a type "text" of another schema would be another cast.
    { sql: "SELECT CAST('tuple' AS pg_catalog.text) AS x", out: "SELECT CAST('tuple' AS pg_catalog.text) AS x", kinds: ['read'] },
    { sql: 'SELECT CAST(t.typlen AS pg_catalog.text) FROM t', out: 'SELECT CAST(t.typlen AS pg_catalog.text) FROM t' },
    { sql: 'SELECT polcmd::pg_catalog.text FROM p', out: 'SELECT CAST(polcmd AS pg_catalog.text) FROM p' },
    { sql: 'SELECT x::pg_catalog.text[] FROM t', out: 'SELECT CAST(x AS pg_catalog.text[]) FROM t' },
    { sql: 'SELECT now()::pg_catalog.date', out: 'SELECT CAST(now() AS pg_catalog.date)' },
    // The grammar's own type names carry pg_catalog in the tree whichever way they are written.
    { sql: "SELECT CAST('1' AS pg_catalog.int4)", out: "SELECT '1'::int" },
    { sql: "SELECT '1'::pg_catalog.varchar(3)", out: "SELECT CAST('1' AS varchar(3))" },
    { sql: "SELECT 'a'::text", out: "SELECT 'a'::text" },
  ];
  runGolden(cases);

  test('nested casts are printed once each: 60 levels of lower(…)::pg_catalog.text', () => {
    // Each level's argument printed twice (for the base printer, then again) made this 2^60 prints.
    let sql = 'x';
    for (let i = 0; i < 60; i++) sql = `lower(${sql})::pg_catalog.text`;
    const [printed] = deparseVerified(parseStatements(`SELECT ${sql} FROM t`));
    expect(printed.match(/CAST\(/g)).toHaveLength(60);
    expect(printed).toContain('CAST(lower(x) AS pg_catalog.text)');
  });
});

describe('isolation levels, never READ WRITE', () => {
  const cases: Golden[] = [
    // JDBC's setTransactionIsolation; SQLAlchemy's isolation_level.
    { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', out: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', kinds: ['session'] },
    { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED', out: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED' },
    { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', out: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY' },
    { sql: 'SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED', out: 'SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED', kinds: ['transaction'] },
    { sql: 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', out: 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ' },
    { sql: "SET default_transaction_isolation = 'serializable'", out: 'SET default_transaction_isolation TO serializable', kinds: ['session'] },
    { sql: "SET default_transaction_isolation TO 'read committed'", out: "SET default_transaction_isolation TO 'read committed'" },
    { sql: "SET default_transaction_isolation TO 'REPEATABLE READ'", out: "SET default_transaction_isolation TO 'REPEATABLE READ'" },
    { sql: "SET LOCAL default_transaction_isolation = 'read uncommitted'", out: "SET LOCAL default_transaction_isolation TO 'read uncommitted'" },
    { sql: 'SET default_transaction_isolation TO DEFAULT', out: 'SET default_transaction_isolation TO DEFAULT' },
    { sql: "SET default_transaction_isolation = 'snapshot'", err: 'setting_not_allowed', message: 'default_transaction_isolation "snapshot" is not allowed' },
    { sql: "SET default_transaction_isolation = ' serializable'", err: 'setting_not_allowed' },
    { sql: 'SET default_transaction_isolation = 1', err: 'setting_not_allowed' },
    { sql: "SET default_transaction_isolation = 'serializable', 'read committed'", err: 'setting_not_allowed' },
    // Read-only mode is the proxy's, in every spelling.
    { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
    { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
    { sql: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
    { sql: 'BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE', err: 'setting_not_allowed', message: 'READ WRITE' },
    { sql: 'SET default_transaction_read_only = off', err: 'setting_not_allowed' },
    { sql: 'SET default_transaction_read_only TO DEFAULT', err: 'setting_not_allowed' },
    { sql: 'SET transaction_read_only = off', err: 'setting_not_allowed' },
    { sql: "SET transaction_isolation = 'serializable'", err: 'setting_not_allowed' },
    { sql: 'SET default_transaction_deferrable = on', err: 'setting_not_allowed' },
  ];
  runGolden(cases, { statementTimeoutMaxMs: 3000 });
});
