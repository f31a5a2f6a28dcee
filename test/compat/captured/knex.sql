-- Every distinct statement knex sent to PostgreSQL while running the compatibility workload
-- (test/compat/run.js --capture), in the order first sent; the database is named app,
-- OIDs of the test objects read <oid of NAME>.

select version();

SELECT 1 AS one;

select * from information_schema.tables where table_name = $1 and table_schema = current_schema();

select * from information_schema.columns where table_name = $1 and table_catalog = current_database() and table_schema = current_schema();

select * from information_schema.columns where table_name = $1 and column_name = $2 and table_schema = current_schema();

select "id", "name" from "customers" where "id" = $1 and not "name" = $2;

SELECT $1::int + 1 AS n, $2::text AS t, $3::timestamptz AS ts, $4::boolean AS b;

BEGIN;

/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id;

COMMIT;

select count(*) as "n" from "orders" where "id" = $1;

ROLLBACK;

SELECT * FROM no_such_table;

SELECT g FROM generate_series(1, 1000) AS g;

/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2;

UPDATE orders SET status = 'paid' WHERE id = 2;

SELECT g FROM generate_series(1, 50) AS g;

SELECT count(*) AS n FROM orders;
