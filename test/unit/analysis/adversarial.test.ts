// Adversarial inputs: comment, quoting and escaping tricks that must never smuggle a second statement through.
import { runGolden, type Golden } from './golden';

const cases: Golden[] = [
  // Nested comments: PostgreSQL nests /* */, so the DROP is inside the comment...
  { sql: '/* /* */ DROP TABLE x */ SELECT 1', out: 'SELECT 1', kinds: ['read'] },
  // ...and here the SELECT is, and the DROP is real.
  { sql: '/* /* */ SELECT 1 */ DROP TABLE x', err: 'statement_not_allowed', message: 'DROP TABLE' },
  { sql: 'SELECT 1 -- ; DROP TABLE x', out: 'SELECT 1' },
  { sql: 'SELECT 1 /* unterminated', err: 'syntax_error' },
  // Dollar quotes hold text, not statements.
  { sql: 'SELECT $$a; DROP TABLE x$$', out: "SELECT 'a; DROP TABLE x'" },
  { sql: 'SELECT $tag$ ; DROP TABLE x; $$ $tag$', out: "SELECT ' ; DROP TABLE x; $$ '" },
  { sql: 'SELECT $tag$ ; $x$ DROP TABLE x $tag$', out: "SELECT ' ; $x$ DROP TABLE x '" },
  // E'' strings: \\ is a backslash and '' a quote, so this is one string...
  { sql: String.raw`SELECT E'\\'' ; DROP TABLE x --'`, out: String.raw`SELECT E'\\'' ; DROP TABLE x --'` },
  // ...while \' escapes the quote and the DROP is outside the string.
  { sql: String.raw`SELECT E'\'' ; DROP TABLE x --'`, err: 'statement_not_allowed', message: 'DROP TABLE', multi: true },
  // With standard_conforming_strings on, a backslash in an ordinary string is just a character.
  { sql: String.raw`SELECT '\'; DROP TABLE x; --'`, err: 'statement_not_allowed', message: 'DROP TABLE', multi: true },
  { sql: String.raw`SELECT '\\'; DROP TABLE x; --'`, err: 'statement_not_allowed', message: 'DROP TABLE', multi: true },
  // The deparser prints such a string as E'' with doubled backslashes: the same value either way.
  { sql: String.raw`SELECT 'C:\temp\new'`, out: String.raw`SELECT E'C:\\temp\\new'` },
  { sql: "SELECT 'it''s; DROP TABLE x'", out: "SELECT 'it''s; DROP TABLE x'" },
  // Unicode escapes in identifiers and strings.
  { sql: String.raw`SELECT U&"d\0061t" FROM t`, out: 'SELECT dat FROM t' },
  { sql: String.raw`SELECT U&'\0041' AS a`, out: "SELECT 'A' AS a" },
  { sql: String.raw`SELECT * FROM U&"\0070g_catalog".pg_class`, out: 'SELECT * FROM pg_catalog.pg_class' },
  // Identifiers that look like keywords or statements.
  { sql: 'SELECT "DROP TABLE x" FROM "select"', out: 'SELECT "DROP TABLE x" FROM "select"' },
  { sql: 'SELECT 1 AS "a""; DROP TABLE x; --"', out: 'SELECT 1 AS "a""; DROP TABLE x; --"' },
  // Stray semicolons and whitespace.
  { sql: ';;SELECT 1;;', out: 'SELECT 1' },
  { sql: '\n\tSELECT\n1\n', out: 'SELECT 1' },
  // Nothing to run: PostgreSQL answers EmptyQueryResponse.
  { sql: '', out: '', kinds: [] },
  { sql: '   ', out: '' },
  { sql: ';', out: '' },
  { sql: '-- just a comment', out: '' },
  { sql: "/* reason='x' */", out: '' },
  // Text PostgreSQL cannot parse.
  { sql: 'SELEC 1', err: 'syntax_error' },
  { sql: "SELECT 'unterminated", err: 'syntax_error' },
  { sql: 'SELECT 1\u0000; DROP TABLE x', err: 'syntax_error' },
  // Case and quoting of statement keywords change nothing.
  { sql: 'dRoP tAbLe orders', err: 'statement_not_allowed', message: 'DROP TABLE' },
  { sql: 'select * from orders for update', err: 'statement_not_allowed' },
];

runGolden(cases);
