"""Compatibility workload for asyncpg: binary protocol, its type introspection on first use, prepared statements, cursors."""
import asyncio
import datetime
import decimal
import time

import asyncpg

import compat_harness as h

S = {k: h.dollar(v) for k, v in h.SQL.items()}
t = h.Harness("asyncpg", asyncpg.__version__)


async def main():
    conn = None
    notices = []

    async def connect():
        nonlocal conn
        # asyncpg's defaults: client_encoding='utf-8' in the startup packet, statement cache on.
        conn = await asyncpg.connect(h.URL)
        conn.add_log_listener(lambda c, m: notices.append(m.message))
        return await conn.fetchval(S["good"]) == 1 and "SELECT 1"

    if not await t.acheck("connect", connect):
        return
    await t.acheck("session.info", lambda: _str(conn.fetchrow(S["session_info"])))
    tables = []

    async def introspect_tables():
        tables.extend(r[0] for r in await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
        return h.check_tables(tables)

    await t.acheck("introspect.tables", introspect_tables)
    await t.acheck("leak.tables", _async(lambda: h.check_leak_tables(tables)))
    columns = []

    async def introspect_columns():
        columns.extend(r[0] for r in await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", "customers"))
        return h.check_columns(columns)

    await t.acheck("introspect.columns", introspect_columns)
    await t.acheck("leak.columns", _async(lambda: h.check_leak_columns(columns)))

    async def params():
        rows = await conn.fetch(S["params"], 1, "x")
        h.require(len(rows) == 1, f"{len(rows)} rows")
        r = await conn.fetchrow(S["typed"], 41, "a", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), True, decimal.Decimal("1.50"))
        h.require(r["n"] == 42 and r["b"] is True, str(r))
        return str(dict(r))

    await t.acheck("params", params)

    async def prepared():
        stmt = await conn.prepare(S["prepared"])
        return f"n={await stmt.fetchval(1)}, {await stmt.fetchval(2)}"

    await t.acheck("prepared", prepared)

    async def composite():
        # A whole-row value has the table's composite type: asyncpg introspects it in pg_type/pg_attribute before decoding.
        r = await conn.fetchval("SELECT c FROM customers c ORDER BY id LIMIT 1")
        h.require(r is not None, "no row")
        # Decoded with field names: through the proxy exactly the visible columns, the email masked.
        fields = list(r.keys())
        if h.TARGET == "proxy":
            h.require(fields == ["id", "tenant_id", "name", "email", "phone"], str(fields))
            h.require("***" in r["email"], str(dict(r)))
        return f"record with fields {', '.join(fields)}"

    await t.acheck("types.composite", composite)

    async def tx(end):
        tr = conn.transaction()
        await tr.start()
        try:
            new_id = await conn.fetchval(S["insert"])
        except Exception:
            await tr.rollback()
            raise
        await (tr.commit() if end == "commit" else tr.rollback())
        n = await conn.fetchval(S["count_by_id"], new_id)
        want = 1 if end == "commit" else 0
        h.require(n == want, f"order {new_id}: count {n}, expected {want}")
        return f"order {new_id} {'committed' if end == 'commit' else 'rolled back'}"

    await t.acheck("tx.commit", lambda: tx("commit"))
    await t.acheck("tx.rollback", lambda: tx("rollback"))

    async def error_recover():
        try:
            await conn.fetch(S["bad"])
        except asyncpg.PostgresError as e:
            failed = e
        else:
            raise h.CheckFailed("the bad statement succeeded")
        h.require(await conn.fetchval(S["good"]) == 1, "no row after the error")
        return h.error_detail(failed) + "; then SELECT 1 ok"

    await t.acheck("error.recover", error_recover)

    async def cancel():
        # asyncpg cancels a query whose task is cancelled (a CancelRequest on a new connection).
        started = time.time()
        try:
            await asyncio.wait_for(conn.fetchval(S["long"]), timeout=0.5)
        except asyncio.TimeoutError:
            h.require(await conn.fetchval(S["good"]) == 1, "connection unusable after the cancel")
            return f"cancelled after {int((time.time() - started) * 1000)} ms, connection usable"
        raise h.CheckFailed("the long query finished before the cancel")

    await t.acheck("cancel", cancel)

    async def rowcap():
        notices.clear()
        rows = await conn.fetch(S["rowcap"])
        await asyncio.sleep(0.05)
        return h.check_rowcap(len(rows), notices)

    await t.acheck("rowcap", rowcap)

    async def write(sql):
        status = await conn.execute(sql)
        h.require(status == "UPDATE 1", status)
        return status

    await t.acheck("write.reason", lambda: write(S["write_reason"]))
    await t.acheck("write.noreason", lambda: write(S["write_noreason"]))

    async def cursor():
        # A cursor is a portal read in batches (Execute with a row limit) inside a transaction.
        n = 0
        async with conn.transaction():
            async for _ in conn.cursor(S["cursor"], prefetch=20):
                n += 1
        h.require(n == 50, f"{n} rows")
        return "portal cursor: 50 rows"

    await t.acheck("cursor", cursor)

    async def pool():
        p = await asyncpg.create_pool(h.URL, min_size=2, max_size=2)
        try:
            a, b = await asyncio.gather(p.fetchval(S["pool"]), p.fetchval(S["pool"]))
            return f"2 connections, n={a}/{b}"
        finally:
            await p.close()

    await t.acheck("pool", pool)
    await conn.close()


def _async(fn):
    async def run():
        return fn()

    return run


async def _str(aw):
    return str(dict(await aw))


asyncio.run(main())
