-- pgbench's built-in select-only transaction (-S), as a script file: with a script file pgbench
-- does not read pg_catalog for partition information, which the proxy refuses.
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
