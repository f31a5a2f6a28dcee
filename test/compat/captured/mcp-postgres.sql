-- Every distinct statement mcp-postgres sent to PostgreSQL while running the compatibility workload
-- (test/compat/run.js --capture), in the order first sent; the database is named app,
-- OIDs of the test objects read <oid of NAME>.

BEGIN TRANSACTION READ ONLY;

SELECT 1 AS one;

ROLLBACK;

SELECT table_name FROM information_schema.tables WHERE table_schema = 'public';

SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1;

SELECT id, name FROM customers WHERE id = 1;

SELECT * FROM no_such_table;

SELECT g FROM generate_series(1, 1000) AS g;
