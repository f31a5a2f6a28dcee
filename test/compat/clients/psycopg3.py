"""Compatibility workload for psycopg 3: server-side binding, prepared statements, server-side (named) cursors, pool of two."""
import logging
import re
import threading
import time

import psycopg

import compat_harness as h

t = h.Harness("psycopg", psycopg.__version__)
S = h.SQL
notices = []
conn = None


class Logged(logging.Handler):
    """psycopg logs (and ignores) errors of its own cleanup statements, e.g. DEALLOCATE ALL at rollback."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(re.sub(r"<psycopg\.[^>]*>", "the transaction", record.getMessage().split("\n")[0]))


logged = Logged()
logging.getLogger("psycopg").addHandler(logged)


def connect():
    global conn
    conn = psycopg.connect(h.URL, autocommit=True)
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    return conn.execute(S["good"]).fetchone()[0] == 1 and "SELECT 1"


if t.check("connect", connect):
    t.check("session.info", lambda: str(conn.execute(S["session_info"]).fetchone()))
    tables = []

    def introspect_tables():
        tables.extend(r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
        return h.check_tables(tables)

    t.check("introspect.tables", introspect_tables)
    t.check("leak.tables", lambda: h.check_leak_tables(tables))
    columns = []

    def introspect_columns():
        columns.extend(r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", ["customers"]))
        return h.check_columns(columns)

    t.check("introspect.columns", introspect_columns)
    t.check("leak.columns", lambda: h.check_leak_columns(columns))

    def params():
        rows = conn.execute(S["params"], [1, "x"]).fetchall()
        h.require(len(rows) == 1, f"{len(rows)} rows")
        import datetime, decimal

        r = conn.execute(S["typed"], [41, "a", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), True, decimal.Decimal("1.50")]).fetchone()
        h.require(r[0] == 42 and r[3] is True, str(r))
        return str(r)

    t.check("params", params)

    def prepared():
        a = conn.execute(S["prepared"], [1], prepare=True).fetchone()[0]
        b = conn.execute(S["prepared"], [2], prepare=True).fetchone()[0]
        return f"n={a}, {b}"

    t.check("prepared", prepared)

    def tx(end):
        logged.messages.clear()
        try:
            with conn.transaction() as txn:
                new_id = conn.execute(S["insert"]).fetchone()[0]
                if end == "rollback":
                    raise psycopg.Rollback(txn)
        except psycopg.Rollback:
            raise h.CheckFailed(f"the transaction's end failed: {' | '.join(logged.messages) or 'Rollback escaped'}")
        n = conn.execute(S["count_by_id"], [new_id]).fetchone()[0]
        want = 1 if end == "commit" else 0
        h.require(n == want, f"order {new_id}: count {n}, expected {want}")
        return f"order {new_id} {'committed' if end == 'commit' else 'rolled back'}"

    t.check("tx.commit", lambda: tx("commit"))
    t.check("tx.rollback", lambda: tx("rollback"))

    def error_recover():
        try:
            conn.execute(S["bad"])
        except psycopg.Error as e:
            failed = e
        else:
            raise h.CheckFailed("the bad statement succeeded")
        h.require(conn.execute(S["good"]).fetchone()[0] == 1, "no row after the error")
        return h.error_detail(failed) + "; then SELECT 1 ok"

    t.check("error.recover", error_recover)

    def cancel():
        started = time.time()
        threading.Timer(0.5, conn.cancel).start()
        try:
            conn.execute(S["long"])
        except psycopg.Error as e:
            return h.check_cancelled(e, started)
        return h.check_cancelled(None, started)

    t.check("cancel", cancel)

    def rowcap():
        notices.clear()
        n = len(conn.execute(S["rowcap"]).fetchall())
        return h.check_rowcap(n, notices)

    t.check("rowcap", rowcap)

    def write(sql):
        cur = conn.execute(sql)
        h.require(cur.rowcount == 1, f"{cur.rowcount} rows updated")
        return "UPDATE 1"

    t.check("write.reason", lambda: write(S["write_reason"]))
    t.check("write.noreason", lambda: write(S["write_noreason"]))

    def cursor():
        # A named cursor is a server-side cursor: DECLARE … CURSOR, FETCH FORWARD n, CLOSE.
        with psycopg.connect(h.URL) as c2:
            with c2.cursor(name="compat_cur") as cur:
                cur.itersize = 20
                cur.execute(S["cursor"])
                n = sum(1 for _ in cur)
        h.require(n == 50, f"{n} rows")
        return "named cursor: 50 rows"

    t.check("cursor", cursor)

    def pool():
        a = psycopg.connect(h.URL)
        b = psycopg.connect(h.URL)
        try:
            na = a.execute(S["pool"]).fetchone()[0]
            nb = b.execute(S["pool"]).fetchone()[0]
            return f"2 connections, n={na}/{nb}"
        finally:
            a.close()
            b.close()

    t.check("pool", pool)
    conn.close()
