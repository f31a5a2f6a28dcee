"""The Python side of the compatibility workload (the same checks and SQL as harness.js)."""
import json
import os
import re
import sys
import time
import traceback

TARGET = os.environ.get("COMPAT_TARGET", "direct")
URL = os.environ.get("COMPAT_URL")
HOST = os.environ.get("COMPAT_HOST")
PORT = int(os.environ.get("COMPAT_PORT", "5432"))
USER = os.environ.get("COMPAT_USER")
PASSWORD = os.environ.get("COMPAT_PASSWORD")
DATABASE = os.environ.get("COMPAT_DATABASE")
MAX_ROWS = int(os.environ.get("COMPAT_MAX_ROWS", "0"))

# Placeholders are %s (psycopg, psycopg2); asyncpg rewrites them to $n.
SQL = {
    "good": "SELECT 1 AS one",
    "session_info": "SELECT current_database() AS db, current_schema() AS schema, current_user AS usr, version() AS version",
    "params": "SELECT id, name FROM customers WHERE id = %s AND name <> %s",
    "typed": "SELECT %s::int + 1 AS n, %s::text AS t, %s::timestamptz AS ts, %s::boolean AS b, %s::numeric AS d",
    "prepared": "SELECT count(*) AS n FROM orders WHERE customer_id = %s",
    "insert": "/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id",
    "count_by_id": "SELECT count(*) AS n FROM orders WHERE id = %s",
    "bad": "SELECT * FROM no_such_table",
    "long": "SELECT count(*) FROM generate_series(1, 200000000) AS g",
    "rowcap": "SELECT g FROM generate_series(1, 1000) AS g",
    "write_reason": "/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2",
    "write_noreason": "UPDATE orders SET status = 'paid' WHERE id = 2",
    "pool": "SELECT count(*) AS n FROM orders",
    "cursor": "SELECT g FROM generate_series(1, 50) AS g",
}


def dollar(sql):
    """%s placeholders as $1, $2, … (asyncpg, the wire's own form)."""
    n = [0]

    def repl(_):
        n[0] += 1
        return f"${n[0]}"

    return re.sub(r"%s", repl, sql)


class CheckFailed(Exception):
    pass


def require(cond, message):
    if not cond:
        raise CheckFailed(message)


def error_detail(err):
    code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
    orig = getattr(err, "orig", None)
    if orig is not None and not code:
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        err = orig
    msg = str(err).strip().split("\n")[0]
    if not code:
        msg = f"{type(err).__name__}: {msg}"
    context = err.__cause__ or err.__context__
    if context is not None and not code:
        msg += f" (after {error_detail(context)})"
    return f"{code + ' ' if code else ''}{msg}"[:300]


class Harness:
    def __init__(self, client, version):
        self.client = client
        self.version = version

    def emit(self, check, ok, detail):
        line = {"client": self.client, "version": self.version, "target": TARGET, "check": check, "ok": ok, "detail": str(detail or "")[:400]}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def check(self, check_id, fn):
        try:
            detail = fn()
            self.emit(check_id, True, detail)
            return True
        except CheckFailed as e:
            self.emit(check_id, False, str(e))
        except Exception as e:  # noqa: BLE001 - any driver error is the check's result
            self.emit(check_id, False, error_detail(e))
            if os.environ.get("COMPAT_DEBUG"):
                traceback.print_exc()
        return False

    async def acheck(self, check_id, fn):
        try:
            detail = await fn()
            self.emit(check_id, True, detail)
            return True
        except CheckFailed as e:
            self.emit(check_id, False, str(e))
        except Exception as e:  # noqa: BLE001
            self.emit(check_id, False, error_detail(e))
        return False


def check_tables(names):
    s = {str(n).lower() for n in names}
    require("customers" in s and "orders" in s, f"models missing from {sorted(s)}")
    return f"{len(s)} tables: {', '.join(sorted(s))}"


def check_leak_tables(names):
    require(names, "the introspection gave no tables to check")
    s = {str(n).lower() for n in names}
    if TARGET == "proxy":
        extra = sorted(s - {"customers", "orders"})
        require(not extra, f"tables outside the policy visible: {', '.join(extra)}")
        return "only customers and orders"
    require("internal_notes" in s, "the unlisted table internal_notes should be visible directly")
    return "internal_notes visible directly (the probe is meaningful)"


def check_columns(names):
    s = [str(n).lower() for n in names]
    require(all(c in s for c in ("id", "tenant_id", "name", "email")), f"customers columns incomplete: {s}")
    return "customers: " + ", ".join(s)


def check_leak_columns(names):
    require(names, "the introspection gave no columns to check")
    s = {str(n).lower() for n in names}
    if TARGET == "proxy":
        require("api_secret" not in s, "denied column api_secret visible")
        return "api_secret absent"
    require("api_secret" in s, "api_secret should be visible directly")
    return "api_secret visible directly (the probe is meaningful)"


def check_rowcap(count, notices=None):
    if MAX_ROWS > 0:
        require(count <= MAX_ROWS, f"{count} rows, more than max_rows {MAX_ROWS}")
        if notices is not None:
            hit = [n for n in notices if re.search(r"max_rows|truncat", n, re.I)]
            require(hit, f"{count} rows but no truncation NOTICE ({' | '.join(notices)})")
            return f"{count} rows, NOTICE: {hit[0].strip()}"
        return f"{count} rows"
    require(count == 1000, f"{count} rows, expected 1000")
    return "1000 rows"


def check_cancelled(err, started):
    ms = int((time.time() - started) * 1000)
    require(err is not None, f"the long query finished after {ms} ms instead of being cancelled")
    detail = error_detail(err)
    require(re.search(r"57014|cancel", detail, re.I), f"failed otherwise: {detail}")
    require(not re.search(r"timeout", detail, re.I), f"ended by the statement timeout, not the cancel: {detail}")
    return f"{detail} after {ms} ms"
