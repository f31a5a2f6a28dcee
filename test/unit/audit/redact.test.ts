// Statement text in audit events: literals and comments redacted with PostgreSQL's normaliser, the keyed hash, and the audit key.
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initAnalysis } from '../../../src/analysis/parser';
import { AuditText, loadAuditKey, redactSql, sqlHmac, UNPARSEABLE } from '../../../src/audit/redact';
import { ConfigError } from '../../../src/config/load';
import { createLogger, silentLogger } from '../../../src/log';

beforeAll(() => initAnalysis());

describe('redactSql', () => {
  test.each([
    ['string and number literals', "SELECT * FROM orders WHERE note = 'card 4111-1111' AND total > 100", 'SELECT * FROM orders WHERE note = $1 AND total > $2'],
    ['numbering continues after the statement\'s own parameters', "UPDATE orders SET status = 'paid' WHERE id = $1", 'UPDATE orders SET status = $2 WHERE id = $1'],
    ['every row of a multi-row INSERT', "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", 'INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)'],
    ['dollar-quoted, escape and typed literals', "SELECT $$secret$$, E'\\x41', interval '1 day', true", 'SELECT $1, $2, interval $3, $4'],
    ['a sqlcommenter tag (the reason has its own field)', "/*reason='refund%20for%20Jane'*/ DELETE FROM t WHERE id = 7", 'DELETE FROM t WHERE id = $1'],
    ['comments in the middle and at the end', "SELECT a /* 'hidden' */ FROM t -- ssn 123-45-6789", 'SELECT a FROM t'],
    ['a comment that separates two tokens', 'SELECT/**/1', 'SELECT $1'],
    ['identifiers (quoted, non-ASCII) are kept', 'SELECT "Prénom", 42 FROM "Clients" /* ü */ WHERE x = 1', 'SELECT "Prénom", $1 FROM "Clients" WHERE x = $2'],
    ['several statements', "SELECT 1; SELECT 'two'", 'SELECT $1; SELECT $2'],
    // PostgreSQL's normalisation leaves these two as they are.
    ["an EXECUTE's arguments", "EXECUTE w('sk_live_AAE1', 2)", 'EXECUTE w ($1, $2)'],
    ["a PREPARE's body, after its own parameters", "PREPARE u(int) AS /*reason='r'*/ UPDATE customers SET phone = 'sk_live_AAE2' WHERE id = $1", 'PREPARE u (int) AS UPDATE customers SET phone = $2 WHERE id = $1'],
    ['an EXECUTE among other statements', "SELECT 'a'; EXECUTE r2('sk_live_AAC4')", 'SELECT $1; EXECUTE r2 ($1)'],
    ['the words in a literal only', "SELECT 'prepare execute'", 'SELECT $1'],
    // Where the normalisation leaves a string literal, the statement is named by its kind alone.
    ['EXPLAIN EXECUTE', "EXPLAIN EXECUTE p('secret3')", 'EXPLAIN …'],
    ['CREATE TABLE AS', "CREATE TABLE t AS SELECT 'secret5'", 'CREATE TABLE AS …'],
    ['COMMENT ON', "COMMENT ON TABLE orders IS 'secret6'", 'COMMENT ON TABLE …'],
    ["a column's DEFAULT, beside a statement the normalisation handles", "SELECT 'a'; CREATE TABLE x (a text DEFAULT $$secret7$$)", 'SELECT $1; CREATE TABLE …'],
    // … and where it leaves a number outside a query's type modifiers.
    ['a number in DDL', 'CREATE TEMP TABLE t1 (a numeric DEFAULT 4111111111111111)', 'CREATE TABLE …'],
    ["EXPLAIN EXECUTE's number", 'EXPLAIN EXECUTE p9(6777777)', 'EXPLAIN …'],
    ["FETCH's count, after a query", 'SELECT 1; FETCH 4555555 FROM cc', 'SELECT $1; FETCH …'],
    ["a query's type modifier is kept", 'SELECT 1::varchar(120) FROM t1', 'SELECT $1::varchar(120) FROM t1'],
  ])('replaces %s', (_what, sql, expected) => {
    expect(redactSql(sql)).toBe(expected);
  });

  test.each([
    ['a syntax error', "SELEC 'password123'"],
    ['an unterminated comment', "SELECT 1 /* 'secret"],
    ['an unterminated literal', "SELECT 'secret"],
    ['a zero byte (the parser would read only the text before it)', "SELECT 1\0; SELECT 'secret'"],
  ])('%s becomes the unparseable marker, with none of the text', (_what, sql) => {
    expect(redactSql(sql)).toBe(UNPARSEABLE);
  });

  test('empty text stays empty', () => {
    expect(redactSql('')).toBe('');
    expect(redactSql('  \n')).toBe('');
  });

  test('control characters inside literals and comments do not break the comment scan', () => {
    // The space before a removed comment stays: adding or keeping a space never joins two tokens.
    expect(redactSql("SELECT 'a\u0001b' /* c\u0002d */, 2")).toBe('SELECT $1 , $2');
  });
});

describe('sqlHmac and AuditText', () => {
  const key = Buffer.alloc(32, 7);

  test('is HMAC-SHA256 of the raw text, hex, and depends on the key', () => {
    const sql = "SELECT * FROM t WHERE a = 'x'";
    expect(sqlHmac(sql, key)).toBe(createHmac('sha256', key).update(sql).digest('hex'));
    expect(sqlHmac(sql, key)).toMatch(/^[0-9a-f]{64}$/);
    expect(sqlHmac(sql, Buffer.alloc(32, 8))).not.toBe(sqlHmac(sql, key));
    expect(sqlHmac(`${sql} `, key)).not.toBe(sqlHmac(sql, key));
  });

  test("AuditText's hash is the same HMAC, for short, block-sized and long keys and any text", () => {
    for (const k of [Buffer.alloc(32, 7), Buffer.alloc(64, 1), Buffer.from(Array.from({ length: 200 }, (_, i) => i % 256))]) {
      const text = new AuditText(k);
      for (const sql of ['', 'SELECT 1', "SELECT 'é ü \u2028'", 'x'.repeat(10_000)]) {
        expect(text.hmac(sql)).toBe(createHmac('sha256', k).update(sql, 'utf8').digest('hex'));
        // The key state is copied, never consumed: the same text hashes the same again.
        expect(text.hmac(sql)).toBe(text.hmac(sql));
      }
    }
  });

  test('fields: redacted text, the hash of the raw text, and the rewritten text redacted likewise', () => {
    const text = new AuditText(key);
    const raw = "SELECT name FROM customers WHERE email = 'jane@acme.com'";
    expect(text.fields(raw, "SELECT name FROM (SELECT name FROM customers WHERE tenant_id = 1) customers WHERE email = 'jane@acme.com'")).toEqual({
      sql: 'SELECT name FROM customers WHERE email = $1',
      sql_hmac: sqlHmac(raw, key),
      rewritten_sql: 'SELECT name FROM (SELECT name FROM customers WHERE tenant_id = $1) customers WHERE email = $2',
    });
    // Two texts that redact alike are still told apart by the hash.
    expect(text.fields("SELECT 1 WHERE 'a' = 'b'").sql).toBe(text.fields("SELECT 2 WHERE 'c' = 'd'").sql);
    expect(text.fields("SELECT 1 WHERE 'a' = 'b'").sql_hmac).not.toBe(text.fields("SELECT 2 WHERE 'c' = 'd'").sql_hmac);
  });

  test('with redact_literals off the raw text is kept; the key is never enumerable', () => {
    const text = new AuditText(key, false);
    expect(text.fields("SELECT 'x'")).toEqual({ sql: "SELECT 'x'", sql_hmac: sqlHmac("SELECT 'x'", key) });
    expect(JSON.stringify(text)).not.toContain('key');
    expect(Object.keys(text)).not.toContain('key');
  });
});

describe('loadAuditKey', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-key-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('reads a mounted secret, ignoring one trailing newline', () => {
    const file = path.join(dir, 'key');
    writeFileSync(file, `${'k'.repeat(40)}\n`);
    expect(loadAuditKey(file, silentLogger).toString()).toBe('k'.repeat(40));
    writeFileSync(file, `${'k'.repeat(40)}\r\n`);
    expect(loadAuditKey(file, silentLogger).toString()).toBe('k'.repeat(40));
  });

  test('refuses a short key and a missing file, without printing the key', () => {
    const file = path.join(dir, 'key');
    writeFileSync(file, 'short-secret\n');
    expect(() => loadAuditKey(file, silentLogger)).toThrow(ConfigError);
    expect(() => loadAuditKey(file, silentLogger)).toThrow(/at least 32 bytes/);
    expect(() => loadAuditKey(file, silentLogger)).not.toThrow(/short-secret/);
    expect(() => loadAuditKey(path.join(dir, 'missing'), silentLogger)).toThrow(/ENOENT/);
  });

  test('without a key file: a random key per process, and a warning', () => {
    const lines: string[] = [];
    const log = createLogger('warn', { write: (l: string) => lines.push(l) });
    const a = loadAuditKey(undefined, log);
    const b = loadAuditKey(undefined, log);
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 40, msg: expect.stringMatching(/random key/) });
  });
});
