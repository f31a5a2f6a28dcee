// Compatibility workload for the PostgreSQL JDBC driver (pgjdbc): DatabaseMetaData introspection,
// server-side prepared statements, fetch-size cursors, cancel, warnings for NOTICEs.
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class Jdbc {
  static final String TARGET = env("COMPAT_TARGET", "direct");
  static final int MAX_ROWS = Integer.parseInt(env("COMPAT_MAX_ROWS", "0"));
  static final String URL = "jdbc:postgresql://" + env("COMPAT_HOST", "127.0.0.1") + ":" + env("COMPAT_PORT", "5432") + "/" + env("COMPAT_DATABASE", "postgres") + "?sslmode=disable";
  static String version = "?";

  interface Check { String run() throws Exception; }

  static String env(String k, String d) { String v = System.getenv(k); return v == null || v.isEmpty() ? d : v; }

  static String json(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  static boolean check(String id, Check fn) {
    boolean ok;
    String detail;
    try { detail = fn.run(); ok = true; }
    catch (SQLException e) { ok = false; detail = (e.getSQLState() == null ? "" : e.getSQLState() + " ") + String.valueOf(e.getMessage()).split("\n")[0]; }
    catch (Exception e) { ok = false; detail = e.getClass().getSimpleName() + ": " + e.getMessage(); }
    if (detail == null) detail = "";
    if (detail.length() > 400) detail = detail.substring(0, 400);
    System.out.println("{\"client\":\"jdbc\",\"version\":" + json(version) + ",\"target\":" + json(TARGET) + ",\"check\":" + json(id) + ",\"ok\":" + ok + ",\"detail\":" + json(detail) + "}");
    System.out.flush();
    return ok;
  }

  static void require(boolean cond, String message) throws Exception { if (!cond) throw new Exception(message); }

  static Connection open() throws SQLException {
    return DriverManager.getConnection(URL, env("COMPAT_USER", "postgres"), env("COMPAT_PASSWORD", ""));
  }

  static String checkTables(List<String> names) throws Exception {
    require(names.contains("customers") && names.contains("orders"), "models missing from " + names);
    return names.size() + " tables: " + names;
  }

  static String checkLeakTables(List<String> names) throws Exception {
    require(!names.isEmpty(), "the introspection gave no tables to check");
    if (TARGET.equals("proxy")) {
      List<String> extra = new ArrayList<>(names);
      extra.removeAll(List.of("customers", "orders"));
      require(extra.isEmpty(), "tables outside the policy visible: " + extra);
      return "only customers and orders";
    }
    require(names.contains("internal_notes"), "the unlisted table internal_notes should be visible directly");
    return "internal_notes visible directly (the probe is meaningful)";
  }

  static String checkLeakColumns(List<String> names) throws Exception {
    require(!names.isEmpty(), "the introspection gave no columns to check");
    if (TARGET.equals("proxy")) { require(!names.contains("api_secret"), "denied column api_secret visible"); return "api_secret absent"; }
    require(names.contains("api_secret"), "api_secret should be visible directly");
    return "api_secret visible directly (the probe is meaningful)";
  }

  static long scalar(Connection c, String sql, Object... params) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.length; i++) ps.setObject(i + 1, params[i]);
      try (ResultSet rs = ps.executeQuery()) { rs.next(); return rs.getLong(1); }
    }
  }

  /** An UPDATE through Statement.execute, saying what came back when it is not an update count of 1. */
  static String update(Connection c, String sql) throws Exception {
    try (Statement s = c.createStatement()) {
      boolean resultSet = s.execute(sql);
      if (resultSet) {
        ResultSetMetaData md = s.getResultSet().getMetaData();
        List<String> cols = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) cols.add(md.getColumnName(i));
        throw new Exception("the UPDATE returned a result set with columns " + cols + " instead of an update count");
      }
      int n = s.getUpdateCount();
      require(n == 1, "update count " + n);
      return "UPDATE 1";
    }
  }

  public static void main(String[] args) throws Exception {
    version = org.postgresql.Driver.getVersion().replace("PostgreSQL JDBC Driver ", "");
    final Connection[] holder = new Connection[1];
    if (!check("connect", () -> { holder[0] = open(); return "SELECT 1 = " + scalar(holder[0], "SELECT 1"); })) return;
    Connection c = holder[0];
    check("session.info", () -> {
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT current_database() AS db, current_schema() AS schema, current_user AS usr, version() AS version")) { rs.next(); return rs.getString(1) + " " + rs.getString(2); }
    });
    List<String> tables = new ArrayList<>();
    check("introspect.tables", () -> {
      try (ResultSet rs = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) { while (rs.next()) tables.add(rs.getString("TABLE_NAME")); }
      return checkTables(tables);
    });
    check("leak.tables", () -> checkLeakTables(tables));
    List<String> columns = new ArrayList<>();
    check("introspect.columns", () -> {
      try (ResultSet rs = c.getMetaData().getColumns(null, "public", "customers", "%")) { while (rs.next()) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME")); }
      List<String> names = new ArrayList<>();
      for (String col : columns) names.add(col.split(":")[0]);
      require(names.containsAll(List.of("id", "tenant_id", "name", "email")), "customers columns incomplete: " + columns);
      return "customers: " + columns;
    });
    check("leak.columns", () -> { List<String> names = new ArrayList<>(); for (String col : columns) names.add(col.split(":")[0]); return checkLeakColumns(names); });
    check("introspect.fks", () -> {
      List<String> fks = new ArrayList<>();
      try (ResultSet rs = c.getMetaData().getImportedKeys(null, "public", "orders")) { while (rs.next()) fks.add(rs.getString("FKCOLUMN_NAME") + " -> " + rs.getString("PKTABLE_NAME") + "." + rs.getString("PKCOLUMN_NAME")); }
      require(!fks.isEmpty(), "no foreign key on orders");
      return String.join(", ", fks);
    });
    check("introspect.indexes", () -> {
      List<String> out = new ArrayList<>();
      try (ResultSet rs = c.getMetaData().getPrimaryKeys(null, "public", "orders")) { while (rs.next()) out.add("pk " + rs.getString("COLUMN_NAME")); }
      try (ResultSet rs = c.getMetaData().getIndexInfo(null, "public", "orders", false, true)) { while (rs.next()) out.add(rs.getString("INDEX_NAME") + "(" + rs.getString("COLUMN_NAME") + ")"); }
      require(out.contains("pk id") && out.contains("orders_pkey(id)"), "orders' primary key missing: " + out);
      return String.join(", ", out);
    });
    check("introspect.more", () -> {
      // What SQL tools (DBeaver, DataGrip, Metabase) ask next: schemas, catalogs, keys pointing at a table, types.
      DatabaseMetaData md = c.getMetaData();
      List<String> out = new ArrayList<>();
      try (ResultSet rs = md.getSchemas()) { int n = 0; while (rs.next()) n++; out.add(n + " schemas"); }
      try (ResultSet rs = md.getCatalogs()) { int n = 0; while (rs.next()) n++; out.add(n + " catalogs"); }
      try (ResultSet rs = md.getExportedKeys(null, "public", "customers")) { int n = 0; while (rs.next()) n++; out.add(n + " exported keys"); }
      try (ResultSet rs = md.getTypeInfo()) { int n = 0; while (rs.next()) n++; out.add(n + " types"); }
      out.add("product " + md.getDatabaseProductVersion());
      return String.join(", ", out);
    });
    check("params", () -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT id, name FROM customers WHERE id = ? AND name <> ?")) {
        ps.setInt(1, 1); ps.setString(2, "x");
        int n = 0; try (ResultSet rs = ps.executeQuery()) { while (rs.next()) n++; }
        require(n == 1, n + " rows");
      }
      try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1 AS n, ?::text AS t, ?::timestamptz AS ts, ?::boolean AS b, ?::numeric AS d")) {
        ps.setInt(1, 41); ps.setString(2, "a"); ps.setTimestamp(3, Timestamp.valueOf("2024-01-02 03:04:05")); ps.setBoolean(4, true); ps.setBigDecimal(5, new BigDecimal("1.50"));
        try (ResultSet rs = ps.executeQuery()) { rs.next(); require(rs.getInt(1) == 42 && rs.getBoolean(4), "wrong values"); return rs.getInt(1) + " " + rs.getString(2) + " " + rs.getTimestamp(3) + " " + rs.getBoolean(4) + " " + rs.getBigDecimal(5); }
      }
    });
    check("prepared", () -> {
      // prepareThreshold 1: a named server-side statement from the first execution on.
      try (PreparedStatement ps = c.prepareStatement("SELECT count(*) AS n FROM orders WHERE customer_id = ?")) {
        ps.unwrap(org.postgresql.PGStatement.class).setPrepareThreshold(1);
        StringBuilder b = new StringBuilder("n=");
        for (int i = 1; i <= 3; i++) { ps.setInt(1, i); try (ResultSet rs = ps.executeQuery()) { rs.next(); b.append(rs.getLong(1)).append(' '); } }
        return b.toString().trim();
      }
    });
    for (String end : new String[] {"commit", "rollback"}) {
      check("tx." + end, () -> {
        c.setAutoCommit(false);
        long id;
        try {
          id = scalar(c, "/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 100) RETURNING id");
          if (end.equals("commit")) c.commit(); else c.rollback();
        } catch (SQLException e) { c.rollback(); throw e; }
        finally { c.setAutoCommit(true); }
        long n = scalar(c, "SELECT count(*) AS n FROM orders WHERE id = ?", id);
        require(n == (end.equals("commit") ? 1 : 0), "order " + id + ": count " + n);
        return "order " + id + (end.equals("commit") ? " committed" : " rolled back");
      });
    }
    check("error.recover", () -> {
      String failed = null;
      try (Statement s = c.createStatement()) { s.executeQuery("SELECT * FROM no_such_table"); } catch (SQLException e) { failed = e.getSQLState() + " " + e.getMessage().split("\n")[0]; }
      require(failed != null, "the bad statement succeeded");
      require(scalar(c, "SELECT 1") == 1, "no row after the error");
      return failed + "; then SELECT 1 ok";
    });
    check("cancel", () -> {
      long started = System.currentTimeMillis();
      try (Statement s = c.createStatement()) {
        Thread t = new Thread(() -> { try { Thread.sleep(500); s.cancel(); } catch (Exception ignored) { } });
        t.start();
        try { s.executeQuery("SELECT count(*) FROM generate_series(1, 200000000) AS g"); }
        catch (SQLException e) {
          long ms = System.currentTimeMillis() - started;
          String d = e.getSQLState() + " " + e.getMessage().split("\n")[0];
          require("57014".equals(e.getSQLState()) && !d.contains("timeout"), "failed otherwise: " + d);
          return d + " after " + ms + " ms";
        }
        throw new Exception("the long query finished instead of being cancelled");
      }
    });
    check("rowcap", () -> {
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT g FROM generate_series(1, 1000) AS g")) {
        int n = 0; while (rs.next()) n++;
        if (MAX_ROWS > 0) {
          require(n <= MAX_ROWS, n + " rows, more than max_rows " + MAX_ROWS);
          SQLWarning w = s.getWarnings();
          require(w != null, n + " rows but no NOTICE as a warning");
          return n + " rows, NOTICE: " + w.getMessage();
        }
        require(n == 1000, n + " rows, expected 1000");
        return "1000 rows";
      }
    });
    check("write.reason", () -> {
      try (Statement s = c.createStatement()) {
        int n = s.executeUpdate("/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2");
        require(n == 1, "executeUpdate returned " + n + "; " + update(c, "/*reason='compat'*/ UPDATE orders SET status = 'paid' WHERE id = 2") + " through execute()");
        return "UPDATE 1";
      }
    });
    check("write.returning", () -> {
      // RETURN_GENERATED_KEYS makes pgjdbc append RETURNING * (what Hibernate and most JDBC ORMs do).
      try (PreparedStatement ps = c.prepareStatement("/*reason='compat'*/ INSERT INTO orders (customer_id, total_cents) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
        ps.setInt(1, 1);
        ps.setInt(2, 100);
        int n = ps.executeUpdate();
        require(n == 1, "update count " + n);
        try (ResultSet keys = ps.getGeneratedKeys()) {
          require(keys.next(), "no generated keys");
          return "generated id " + keys.getLong("id") + ", " + keys.getMetaData().getColumnCount() + " columns";
        }
      }
    });
    check("write.noreason", () -> update(c, "UPDATE orders SET status = 'paid' WHERE id = 2"));
    check("cursor", () -> {
      // With autocommit off and a fetch size, pgjdbc reads one portal in batches (Execute with a row limit).
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.setFetchSize(20);
        int n = 0; try (ResultSet rs = s.executeQuery("SELECT g FROM generate_series(1, 50) AS g")) { while (rs.next()) n++; }
        c.commit();
        require(n == 50, n + " rows");
        return "fetch size 20: 50 rows";
      } finally { c.rollback(); c.setAutoCommit(true); }
    });
    check("pool", () -> {
      try (Connection a = open(); Connection b = open()) { return "2 connections, n=" + scalar(a, "SELECT count(*) FROM orders") + "/" + scalar(b, "SELECT count(*) FROM orders"); }
    });
    c.close();
  }
}
