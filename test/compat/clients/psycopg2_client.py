"""Compatibility workload for psycopg2: client-side binding, named (server-side) cursors, a pool of two."""
import datetime
import decimal
import threading
import time

import psycopg2
import psycopg2.pool

import compat_harness as h

t = h.Harness("psycopg2", psycopg2.__version__.split(" ")[0])
S = h.SQL
conn = None


def connect():
    global conn
    conn = psycopg2.connect(h.URL)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(S["good"])
    return cur.fetchone()[0] == 1 and "SELECT 1"


def q(sql, params=None):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur


if t.check("connect", connect):
    t.check("session.info", lambda: str(q(S["session_info"]).fetchone()))
    tables = []

    def introspect_tables():
        tables.extend(r[0] for r in q("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall())
        return h.check_tables(tables)

    t.check("introspect.tables", introspect_tables)
    t.check("leak.tables", lambda: h.check_leak_tables(tables))
    columns = []

    def introspect_columns():
        columns.extend(r[0] for r in q("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", ["customers"]).fetchall())
        return h.check_columns(columns)

    t.check("introspect.columns", introspect_columns)
    t.check("leak.columns", lambda: h.check_leak_columns(columns))

    def params():
        rows = q(S["params"], [1, "x"]).fetchall()
        h.require(len(rows) == 1, f"{len(rows)} rows")
        r = q(S["typed"], [41, "a", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), True, decimal.Decimal("1.50")]).fetchone()
        h.require(r[0] == 42 and r[3] is True, str(r))
        return str(r)

    t.check("params", params)

    def prepared_sql():
        # psycopg2 has no protocol-level prepare: applications use SQL PREPARE / EXECUTE / DEALLOCATE.
        q("PREPARE compat_q (int) AS " + S["prepared"].replace("%s", "$1"))
        a = q("EXECUTE compat_q (1)").fetchone()[0]
        b = q("EXECUTE compat_q (2)").fetchone()[0]
        q("DEALLOCATE compat_q")
        return f"n={a}, {b}"

    t.check("prepared.sql", prepared_sql)

    def tx(end):
        conn.autocommit = False
        try:
            new_id = q(S["insert"]).fetchone()[0]
            conn.commit() if end == "commit" else conn.rollback()
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.autocommit = True
        n = q(S["count_by_id"], [new_id]).fetchone()[0]
        want = 1 if end == "commit" else 0
        h.require(n == want, f"order {new_id}: count {n}, expected {want}")
        return f"order {new_id} {'committed' if end == 'commit' else 'rolled back'}"

    t.check("tx.commit", lambda: tx("commit"))
    t.check("tx.rollback", lambda: tx("rollback"))

    def error_recover():
        try:
            q(S["bad"])
        except psycopg2.Error as e:
            failed = e
        else:
            raise h.CheckFailed("the bad statement succeeded")
        h.require(q(S["good"]).fetchone()[0] == 1, "no row after the error")
        return h.error_detail(failed) + "; then SELECT 1 ok"

    t.check("error.recover", error_recover)

    def cancel():
        started = time.time()
        threading.Timer(0.5, conn.cancel).start()
        try:
            q(S["long"])
        except psycopg2.Error as e:
            return h.check_cancelled(e, started)
        return h.check_cancelled(None, started)

    t.check("cancel", cancel)

    def rowcap():
        del conn.notices[:]
        n = len(q(S["rowcap"]).fetchall())
        return h.check_rowcap(n, list(conn.notices))

    t.check("rowcap", rowcap)

    def write(sql):
        cur = q(sql)
        h.require(cur.rowcount == 1, f"{cur.rowcount} rows updated")
        return "UPDATE 1"

    t.check("write.reason", lambda: write(S["write_reason"]))
    t.check("write.noreason", lambda: write(S["write_noreason"]))

    def cursor():
        c2 = psycopg2.connect(h.URL)
        try:
            cur = c2.cursor(name="compat_cur")
            cur.itersize = 20
            cur.execute(S["cursor"])
            n = sum(1 for _ in cur)
            cur.close()
            c2.commit()
        finally:
            c2.close()
        h.require(n == 50, f"{n} rows")
        return "named cursor: 50 rows"

    t.check("cursor", cursor)

    def pool():
        p = psycopg2.pool.ThreadedConnectionPool(2, 2, h.URL)
        try:
            a, b = p.getconn(), p.getconn()
            ca, cb = a.cursor(), b.cursor()
            ca.execute(S["pool"])
            cb.execute(S["pool"])
            return f"2 connections, n={ca.fetchone()[0]}/{cb.fetchone()[0]}"
        finally:
            p.closeall()

    t.check("pool", pool)
    conn.close()
