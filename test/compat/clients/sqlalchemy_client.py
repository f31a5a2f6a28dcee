"""Compatibility workload for SQLAlchemy (psycopg2 dialect): inspect() reflection, the LangChain SQLDatabase flow, ORM-style Core, pool."""
import threading
import time

import sqlalchemy as sa
from sqlalchemy import inspect, text

import compat_harness as h

t = h.Harness("sqlalchemy", sa.__version__)
S = h.SQL
url = h.URL.replace("postgres://", "postgresql+psycopg2://", 1)
engine = sa.create_engine(url, pool_size=2, max_overflow=0, future=True)
conn = None


def bind(sql):
    """%s placeholders as :p1, :p2, … (SQLAlchemy's text() form)."""
    parts = sql.split("%s")
    return "".join(p + (f":p{i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def connect():
    global conn
    # The dialect's first connect asks for the server version, current_schema(), the isolation level, standard_conforming_strings.
    conn = engine.connect()
    return conn.execute(text(S["good"])).scalar() == 1 and "SELECT 1"


if t.check("connect", connect):
    insp = None
    tables = []

    def introspect_tables():
        global insp
        insp = inspect(engine)
        tables.extend(insp.get_table_names())
        return h.check_tables(tables)

    t.check("introspect.tables", introspect_tables)
    t.check("leak.tables", lambda: h.check_leak_tables(tables))
    columns = []

    def introspect_columns():
        columns.extend(c["name"] for c in inspect(engine).get_columns("customers"))
        return h.check_columns(columns)

    t.check("introspect.columns", introspect_columns)
    t.check("leak.columns", lambda: h.check_leak_columns(columns))

    def fks():
        fk = inspect(engine).get_foreign_keys("orders")
        h.require(any(f["referred_table"] == "customers" for f in fk), f"no foreign key to customers: {fk}")
        return ", ".join(f"{f['constrained_columns']} -> {f['referred_table']}{f['referred_columns']}" for f in fk)

    t.check("introspect.fks", fks)

    def indexes():
        i = inspect(engine)
        pk = i.get_pk_constraint("orders")
        return f"pk {pk['constrained_columns']}; indexes {[x['name'] for x in i.get_indexes('orders')]}; comment {i.get_table_comment('customers')}"

    t.check("introspect.indexes", indexes)

    def more():
        # The rest of the Inspector surface that tools call (LangChain, Alembic autogenerate, Superset).
        i = inspect(engine)
        out = [
            f"schemas {i.get_schema_names()}",
            f"views {i.get_view_names()}",
            f"unique {i.get_unique_constraints('orders')}",
            f"checks {i.get_check_constraints('orders')}",
            f"has_table {i.has_table('orders')}",
            f"sequences {i.get_sequence_names()}",
            f"column comment {[c.get('comment') for c in i.get_columns('customers') if c.get('comment')]}",
        ]
        return "; ".join(out)[:380]

    t.check("introspect.more", more)

    # The LangChain SQLDatabase flow: list tables, reflect them, describe columns and keys, sample 3 rows, run a generated query.
    meta = sa.MetaData()

    def lc_reflect():
        names = inspect(engine).get_table_names()
        meta.reflect(bind=engine, only=names, views=True)
        described = []
        for tbl in meta.sorted_tables:
            cols = ", ".join(f"{c.name} {c.type.compile(engine.dialect)}" for c in tbl.columns)
            fks = ", ".join(f"{fk.parent.name} -> {fk.column.table.name}.{fk.column.name}" for fk in tbl.foreign_keys)
            described.append(f"{tbl.name}({cols}){' FK ' + fks if fks else ''}")
        h.require("customers" in meta.tables and "orders" in meta.tables, f"reflected {list(meta.tables)}")
        return "; ".join(described)[:380]

    t.check("langchain.reflect", lc_reflect)

    def lc_sample():
        out = []
        for name in ("customers", "orders"):
            tbl = meta.tables.get(name)
            h.require(tbl is not None, f"{name} not reflected")
            rows = conn.execute(sa.select(tbl).limit(3)).fetchall()
            h.require(len(rows) == 3, f"{name}: {len(rows)} sample rows")
            out.append(f"{name}: 3 rows")
        return ", ".join(out)

    t.check("langchain.sample", lc_sample)

    def lc_query():
        rows = conn.execute(text("SELECT c.name, count(o.id) AS n_orders, sum(o.total_cents) AS cents FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY n_orders DESC LIMIT 5")).fetchall()
        h.require(rows, "no rows")
        return str(rows[0])

    t.check("langchain.query", lc_query)

    def params():
        rows = conn.execute(text(bind(S["params"])), {"p1": 1, "p2": "x"}).fetchall()
        h.require(len(rows) == 1, f"{len(rows)} rows")
        return str(rows[0])

    t.check("params", params)

    def tx(end):
        with engine.connect() as c:
            trans = c.begin()
            try:
                new_id = c.execute(text(S["insert"])).scalar()
            except Exception:
                trans.rollback()
                raise
            trans.commit() if end == "commit" else trans.rollback()
            n = c.execute(text(bind(S["count_by_id"])), {"p1": new_id}).scalar()
            c.rollback()
        want = 1 if end == "commit" else 0
        h.require(n == want, f"order {new_id}: count {n}, expected {want}")
        return f"order {new_id} {'committed' if end == 'commit' else 'rolled back'}"

    t.check("tx.commit", lambda: tx("commit"))
    t.check("tx.rollback", lambda: tx("rollback"))

    def error_recover():
        try:
            conn.execute(text(S["bad"]))
        except sa.exc.DBAPIError as e:
            failed = e
            conn.rollback()
        else:
            raise h.CheckFailed("the bad statement succeeded")
        h.require(conn.execute(text(S["good"])).scalar() == 1, "no row after the error")
        return h.error_detail(failed) + "; then SELECT 1 ok"

    t.check("error.recover", error_recover)

    def cancel():
        started = time.time()
        raw = conn.connection.dbapi_connection if hasattr(conn.connection, "dbapi_connection") else conn.connection.connection
        threading.Timer(0.5, raw.cancel).start()
        try:
            conn.execute(text(S["long"]))
        except sa.exc.DBAPIError as e:
            conn.rollback()
            return h.check_cancelled(e, started)
        return h.check_cancelled(None, started)

    t.check("cancel", cancel)

    def rowcap():
        n = len(conn.execute(text(S["rowcap"])).fetchall())
        return h.check_rowcap(n)

    t.check("rowcap", rowcap)

    def write(sql):
        with engine.begin() as c:
            r = c.execute(text(sql))
            h.require(r.rowcount == 1, f"{r.rowcount} rows updated")
        return "UPDATE 1"

    t.check("write.reason", lambda: write(S["write_reason"]))
    t.check("write.noreason", lambda: write(S["write_noreason"]))

    def cursor():
        # stream_results: psycopg2's named (server-side) cursor.
        with engine.connect() as c:
            r = c.execution_options(stream_results=True, max_row_buffer=20).execute(text(S["cursor"]))
            n = sum(1 for _ in r)
            c.rollback()
        h.require(n == 50, f"{n} rows")
        return "stream_results: 50 rows"

    t.check("cursor", cursor)

    def pool():
        conn.rollback()
        with engine.connect() as a:
            na = a.execute(text(S["pool"])).scalar()
            h.require(engine.pool.checkedout() == 2, f"{engine.pool.checkedout()} connections checked out")
            return f"2 connections, n={na}"

    t.check("pool", pool)
    conn.close()
    engine.dispose()
