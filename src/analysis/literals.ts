// The SQL literal tokens the proxy reads itself, as PostgreSQL's scanner delimits them: numbers, '…' strings, TRUE, FALSE and NULL.

/** The lexical class of a literal: lifted ones (int, num, str) or `other` (kept in the key as written). */
export type LiteralKind = 'int' | 'num' | 'str' | 'other';

const INT4_MAX = 2147483647;
const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * The literal token starting at `i` (where PostgreSQL located a constant): its end and class, or
 * undefined for a form not read here (the shape cache then leaves the text alone, and the
 * audit trail's redaction runs the normaliser).
 */
export function lexLiteral(sql: string, i: number): { end: number; kind: LiteralKind } | undefined {
  const c = sql[i];
  const lower = sql.slice(i, i + 5).toLowerCase();
  // TRUE, FALSE, NULL: constants too, kept in the key.
  for (const word of ['true', 'false', 'null']) {
    if (lower.startsWith(word) && !IDENT_CHAR.test(sql[i + word.length] ?? '')) return { end: i + word.length, kind: 'other' };
  }
  if (c === "'") {
    let j = i + 1;
    for (;;) {
      const q = sql.indexOf("'", j);
      if (q < 0) return undefined;
      if (sql[q + 1] === "'") {
        j = q + 2;
        continue;
      }
      // 'a' <newline> 'b' is one constant: not read here.
      if (/^[ \t\r\n\f]*\n[ \t\r\n\f]*'/.test(sql.slice(q + 1, q + 200))) return undefined;
      return { end: q + 1, kind: 'str' };
    }
  }
  if (c === '-') {
    const m = /^-[ \t\r\n\f]*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(sql.slice(i, i + 400));
    if (!m || IDENT_CHAR.test(sql[i + m[0].length] ?? '')) return undefined;
    return { end: i + m[0].length, kind: /^\d+$/.test(m[1]) && Number(m[1]) <= INT4_MAX ? 'int' : 'num' };
  }
  if (/[0-9.]/.test(c)) {
    // 0x1F, 0o17, 0b101, 1_000 (PostgreSQL 16): not read here.
    const m = /^(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(sql.slice(i, i + 400));
    if (!m || IDENT_CHAR.test(sql[i + m[0].length] ?? '') || sql[i + m[0].length] === '.') return undefined;
    return { end: i + m[0].length, kind: /^\d+$/.test(m[1]) && Number(m[1]) <= INT4_MAX ? 'int' : 'num' };
  }
  // E'…', B'…', X'…', N'…', U&'…' and $$…$$: not read here.
  return undefined;
}
