// Compatibility workload for pgx v4 (Go): extended protocol with binary parameters and results,
// named prepared statements, context cancellation (CancelRequest), notices, pgxpool.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

var (
	target  = envOr("COMPAT_TARGET", "direct")
	url     = os.Getenv("COMPAT_URL")
	maxRows = mustAtoi(envOr("COMPAT_MAX_ROWS", "0"))
	version = envOr("COMPAT_PGX_VERSION", "v4")
)

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }

func detailOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code + " " + pgErr.Message
	}
	return err.Error()
}

func check(id string, fn func() (string, error)) bool {
	detail, err := fn()
	ok := err == nil
	if !ok {
		detail = detailOf(err)
	}
	if len(detail) > 400 {
		detail = detail[:400]
	}
	line, _ := json.Marshal(map[string]interface{}{"client": "pgx", "version": version, "target": target, "check": id, "ok": ok, "detail": detail})
	fmt.Println(string(line))
	return ok
}

func fail(format string, a ...interface{}) error { return fmt.Errorf(format, a...) }

func strings1(ctx context.Context, conn *pgx.Conn, sql string, args ...interface{}) ([]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func main() {
	ctx := context.Background()
	var notices []string
	var mu sync.Mutex
	cfg, err := pgx.ParseConfig(url)
	var conn *pgx.Conn
	if !check("connect", func() (string, error) {
		if err != nil {
			return "", err
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { mu.Lock(); notices = append(notices, n.Message); mu.Unlock() }
		conn, err = pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return "", err
		}
		var one int
		return "SELECT 1", conn.QueryRow(ctx, "SELECT 1 AS one").Scan(&one)
	}) {
		return
	}
	defer conn.Close(ctx)
	check("session.info", func() (string, error) {
		var db, schema, usr, v string
		err := conn.QueryRow(ctx, "SELECT current_database() AS db, current_schema() AS schema, current_user AS usr, version() AS version").Scan(&db, &schema, &usr, &v)
		return db + " " + schema, err
	})
	var tables []string
	check("introspect.tables", func() (string, error) {
		tables, err = strings1(ctx, conn, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
		if err != nil {
			return "", err
		}
		if !contains(tables, "customers") || !contains(tables, "orders") {
			return "", fail("models missing from %v", tables)
		}
		return strings.Join(tables, ", "), nil
	})
	check("leak.tables", func() (string, error) {
		if len(tables) == 0 {
			return "", fail("the introspection gave no tables to check")
		}
		if target == "proxy" {
			for _, t := range tables {
				if t != "customers" && t != "orders" {
					return "", fail("tables outside the policy visible: %s", t)
				}
			}
			return "only customers and orders", nil
		}
		if !contains(tables, "internal_notes") {
			return "", fail("the unlisted table internal_notes should be visible directly")
		}
		return "internal_notes visible directly (the probe is meaningful)", nil
	})
	var columns []string
	check("introspect.columns", func() (string, error) {
		columns, err = strings1(ctx, conn, "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", "customers")
		if err != nil {
			return "", err
		}
		for _, c := range []string{"id", "tenant_id", "name", "email"} {
			if !contains(columns, c) {
				return "", fail("customers columns incomplete: %v", columns)
			}
		}
		return "customers: " + strings.Join(columns, ", "), nil
	})
	check("leak.columns", func() (string, error) {
		if len(columns) == 0 {
			return "", fail("the introspection gave no columns to check")
		}
		if target == "proxy" {
			if contains(columns, "api_secret") {
				return "", fail("denied column api_secret visible")
			}
			return "api_secret absent", nil
		}
		if !contains(columns, "api_secret") {
			return "", fail("api_secret should be visible directly")
		}
		return "api_secret visible directly (the probe is meaningful)", nil
	})
	check("params", func() (string, error) {
		var id int32
		var name string
		if err := conn.QueryRow(ctx, "SELECT id, name FROM customers WHERE id = $1 AND name <> $2", 1, "x").Scan(&id, &name); err != nil {
			return "", err
		}
		var n int32
		var t string
		var ts time.Time
		var b bool
		var d float64
		err := conn.QueryRow(ctx, "SELECT $1::int + 1 AS n, $2::text AS t, $3::timestamptz AS ts, $4::boolean AS b, $5::numeric AS d", 41, "a", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), true, 1.5).Scan(&n, &t, &ts, &b, &d)
		if err != nil {
			return "", err
		}
		if n != 42 || !b {
			return "", fail("wrong values %d %v", n, b)
		}
		return fmt.Sprintf("%d %s %s %v %v", n, t, ts.UTC().Format(time.RFC3339), b, d), nil
	})
	check("prepared", func() (string, error) {
		if _, err := conn.Prepare(ctx, "compat_count", "SELECT count(*) AS n FROM orders WHERE customer_id = $1"); err != nil {
			return "", err
		}
		var a, b int64
		if err := conn.QueryRow(ctx, "compat_count", 1).Scan(&a); err != nil {
			return "", err
		}
		if err := conn.QueryRow(ctx, "compat_count", 2).Scan(&b); err != nil {
			return "", err
		}
		return fmt.Sprintf("n=%d, %d", a, b), nil
	})
	for _, end := range []string{"commit", "rollback"} {
		end := end
		check("tx."+end, func() (string, error) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return "", err
			}
			var id int32
			// RETURNING read with pgx's binary result format.
			if err := tx.QueryRow(ctx, "/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id").Scan(&id); err != nil {
				tx.Rollback(ctx)
				return "", err
			}
			if end == "commit" {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				return "", err
			}
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) AS n FROM orders WHERE id = $1", id).Scan(&n); err != nil {
				return "", err
			}
			want := int64(1)
			if end == "rollback" {
				want = 0
			}
			if n != want {
				return "", fail("order %d: count %d, expected %d", id, n, want)
			}
			return fmt.Sprintf("order %d %s", id, end), nil
		})
	}
	check("write.returning", func() (string, error) {
		// RETURNING * read with pgx's per-column result formats (binary where pgx knows the type).
		rows, err := conn.Query(ctx, "/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING *")
		if err != nil {
			return "", err
		}
		defer rows.Close()
		var names []string
		for _, f := range rows.FieldDescriptions() {
			names = append(names, string(f.Name))
		}
		n := 0
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				return "", err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return "", err
		}
		if n != 1 {
			return "", fail("%d rows returned", n)
		}
		return "RETURNING " + strings.Join(names, ", "), nil
	})
	check("error.recover", func() (string, error) {
		_, bad := conn.Exec(ctx, "SELECT * FROM no_such_table")
		if bad == nil {
			return "", fail("the bad statement succeeded")
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1 AS one").Scan(&one); err != nil {
			return "", err
		}
		return detailOf(bad) + "; then SELECT 1 ok", nil
	})
	check("cancel", func() (string, error) {
		// An explicit CancelRequest: cancelling the context would also close the connection (pgconn v1).
		started := time.Now()
		time.AfterFunc(500*time.Millisecond, func() { conn.PgConn().CancelRequest(ctx) })
		_, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 200000000) AS g")
		if err == nil {
			return "", fail("the long query finished instead of being cancelled")
		}
		ms := time.Since(started).Milliseconds()
		if strings.Contains(detailOf(err), "timeout") || !regexp.MustCompile(`57014|cancel`).MatchString(detailOf(err)) {
			return "", fail("failed otherwise: %s", detailOf(err))
		}
		if conn.IsClosed() {
			return "", fail("the connection closed with the cancel")
		}
		return fmt.Sprintf("%s after %d ms", detailOf(err), ms), nil
	})
	check("rowcap", func() (string, error) {
		mu.Lock()
		notices = nil
		mu.Unlock()
		rows, err := strings1(ctx, conn, "SELECT g::text FROM generate_series(1, 1000) AS g")
		if err != nil {
			return "", err
		}
		if maxRows > 0 {
			if len(rows) > maxRows {
				return "", fail("%d rows, more than max_rows %d", len(rows), maxRows)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(notices) == 0 {
				return "", fail("%d rows but no truncation NOTICE", len(rows))
			}
			return fmt.Sprintf("%d rows, NOTICE: %s", len(rows), notices[0]), nil
		}
		if len(rows) != 1000 {
			return "", fail("%d rows, expected 1000", len(rows))
		}
		return "1000 rows", nil
	})
	for _, w := range [][2]string{{"write.reason", "/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2"}, {"write.noreason", "UPDATE orders SET status = 'paid' WHERE id = 2"}} {
		id, sql := w[0], w[1]
		check(id, func() (string, error) {
			tag, err := conn.Exec(ctx, sql)
			if err != nil {
				return "", err
			}
			if tag.RowsAffected() != 1 {
				return "", fail("tag %s", tag.String())
			}
			return tag.String(), nil
		})
	}
	check("pool", func() (string, error) {
		pcfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			return "", err
		}
		pcfg.MaxConns = 2
		pool, err := pgxpool.ConnectConfig(ctx, pcfg)
		if err != nil {
			return "", err
		}
		defer pool.Close()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		ns := make([]int64, 2)
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = pool.QueryRow(ctx, "SELECT count(*) AS n FROM orders").Scan(&ns[i])
			}(i)
		}
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				return "", e
			}
		}
		return fmt.Sprintf("n=%d/%d", ns[0], ns[1]), nil
	})
}
