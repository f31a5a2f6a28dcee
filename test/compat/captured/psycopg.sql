-- Every distinct statement psycopg sent to PostgreSQL while running the compatibility workload
-- (test/compat/run.js --capture), in the order first sent; the database is named app,
-- OIDs of the test objects read <oid of NAME>.

SELECT 1 AS one;

SELECT current_database() AS db, current_schema() AS schema, current_user AS usr, version() AS version;

SELECT table_name FROM information_schema.tables WHERE table_schema = 'public';

SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position;

SELECT id, name FROM customers WHERE id = $1 AND name <> $2;

SELECT $1::int + 1 AS n, $2::text AS t, $3::timestamptz AS ts, $4::boolean AS b, $5::numeric AS d;

SELECT count(*) AS n FROM orders WHERE customer_id = $1;

BEGIN;

/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id;

COMMIT;

SELECT count(*) AS n FROM orders WHERE id = $1;

ROLLBACK;

DEALLOCATE ALL;

SELECT * FROM no_such_table;

SELECT count(*) FROM generate_series(1, 200000000) AS g;

SELECT g FROM generate_series(1, 1000) AS g;

/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2;

UPDATE orders SET status = 'paid' WHERE id = 2;

DECLARE "compat_cur" CURSOR FOR SELECT g FROM generate_series(1, 50) AS g;

FETCH FORWARD 20 FROM "compat_cur";

CLOSE "compat_cur";

SELECT count(*) AS n FROM orders;
