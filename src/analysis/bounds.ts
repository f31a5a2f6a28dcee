// Work bounds of one statement text: the limits, and the cheap scan that applies them before the parser runs.
//
// The parser (PostgreSQL's grammar in WebAssembly) and every tree walker after it recurse once
// per level of the tree. A left-deep chain such as `1+1+…+1`, `a JOIN b JOIN c …` or
// `SELECT 1 UNION SELECT 1 UNION …` is as deep as it is long, and a deep enough one overflows
// the stack inside the parser (see parser.ts). So the depth is estimated on the raw text, in
// one linear pass that never recurses, and the text is refused before the parser sees it.
import { ProxyError } from '../errors/catalogue';

export interface AnalysisLimits {
  /** Bytes of one statement text (UTF-8), checked first. */
  maxStatementBytes: number;
  /** Estimated tree depth: parentheses, brackets and CASE, plus chained operators inside each. */
  maxNestingDepth: number;
  /** Terms (names, keywords, literals, parameters) in one text. */
  maxTerms: number;
  /** Nodes of the parsed tree. */
  maxParseNodes: number;
  /** Nodes of the tree PostgreSQL plans once derived tables and CTEs are pulled up (expanded-size.ts). */
  maxExpandedNodes: number;
  /** Common table expressions in one statement, and how deeply WITH may nest inside a CTE. */
  maxCtes: number;
  maxCteDepth: number;
  /** Statements in one simple-protocol Query message. */
  maxStatementsPerQuery: number;
  /** Wall time of one analysis, checked between its stages. */
  analysisBudgetMs: number;
}

/**
 * Defaults sit far above what an agent or an ORM sends and well below what breaks:
 * a `+` chain of ~1,500 levels already exhausts the stack in the full analysis (parse, JSON,
 * walkers, deparse, re-parse); generated queries stay under ~50 levels.
 */
export const DEFAULT_ANALYSIS_LIMITS: AnalysisLimits = Object.freeze({
  maxStatementBytes: 1024 * 1024,
  maxNestingDepth: 400,
  maxTerms: 100_000,
  maxParseNodes: 100_000,
  maxExpandedNodes: 200_000,
  maxCtes: 100,
  maxCteDepth: 16,
  maxStatementsPerQuery: 1_000,
  analysisBudgetMs: 2_000,
});

let current: AnalysisLimits = DEFAULT_ANALYSIS_LIMITS;

/** Sets the process's limits (the listener does, from the config, when it starts). */
export function setAnalysisLimits(limits: Partial<AnalysisLimits>): void {
  current = Object.freeze({ ...DEFAULT_ANALYSIS_LIMITS, ...limits });
}

export function analysisLimits(): AnalysisLimits {
  return current;
}

export interface TextShape {
  depth: number;
  terms: number;
}

const enum Ch {
  Tab = 9, Nl = 10, Cr = 13, Space = 32, Bang = 33, Dquote = 34, Hash = 35, Dollar = 36, Percent = 37,
  Amp = 38, Quote = 39, LParen = 40, RParen = 41, Star = 42, Plus = 43, Comma = 44, Minus = 45, Dot = 46,
  Slash = 47, Zero = 48, Nine = 57, Colon = 58, Semi = 59, Lt = 60, Eq = 61, Gt = 62, Question = 63, At = 64,
  LBracket = 91, Backslash = 92, RBracket = 93, Caret = 94, Underscore = 95, Backtick = 96, Pipe = 124, Tilde = 126,
}

function isOperatorChar(c: number): boolean {
  switch (c) {
    case Ch.Plus: case Ch.Minus: case Ch.Star: case Ch.Slash: case Ch.Lt: case Ch.Gt: case Ch.Eq: case Ch.Tilde:
    case Ch.Bang: case Ch.At: case Ch.Hash: case Ch.Percent: case Ch.Caret: case Ch.Amp: case Ch.Pipe:
    case Ch.Backtick: case Ch.Question: case Ch.Colon:
      return true;
    default:
      return false;
  }
}

function isWordStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === Ch.Underscore || c >= 128;
}

function isWordChar(c: number): boolean {
  return isWordStart(c) || (c >= Ch.Zero && c <= Ch.Nine) || c === Ch.Dollar;
}

// Keywords that join their operands into a left-deep (or right-deep) tree, one level per use.
const CHAINING = new Set(['NOT', 'AT', 'COLLATE', 'OPERATOR', 'UNION', 'INTERSECT', 'EXCEPT', 'JOIN', 'IS', 'LIKE', 'ILIKE', 'SIMILAR', 'BETWEEN', 'IN', 'OVERLAPS']);

/**
 * One pass over the text as PostgreSQL's scanner splits it (comments nest; '…', E'…', "…" and
 * $tag$…$tag$ are opaque). Depth is the sum over the open groups of one plus the operators
 * chained in that group; a comma, a semicolon, AND, OR, WHEN, THEN and ELSE end a chain,
 * since PostgreSQL keeps lists, AND/OR arguments and CASE arms flat. It overestimates, never underestimates, a
 * tree's depth for the shapes that nest.
 */
export function scanShape(sql: string, stopAt: { depth: number; terms: number } = { depth: Infinity, terms: Infinity }): TextShape {
  const n = sql.length;
  // Per open group: the operators chained so far, and whether CASE opened it.
  const chains: number[] = [0];
  const caseGroup: boolean[] = [false];
  let depth = 1;
  let maxDepth = 1;
  let terms = 0;
  let i = 0;
  const chain = (): void => {
    chains[chains.length - 1]++;
    depth++;
    if (depth > maxDepth) maxDepth = depth;
  };
  const endChain = (): void => {
    depth -= chains[chains.length - 1];
    chains[chains.length - 1] = 0;
  };
  const open = (isCase: boolean): void => {
    chains.push(0);
    caseGroup.push(isCase);
    depth++;
    if (depth > maxDepth) maxDepth = depth;
  };
  const close = (): void => {
    if (chains.length === 1) return;
    depth -= 1 + chains.pop()!;
    caseGroup.pop();
  };
  while (i < n) {
    if (maxDepth > stopAt.depth || terms > stopAt.terms) break;
    const c = sql.charCodeAt(i);
    if (c === Ch.Space || c === Ch.Nl || c === Ch.Tab || c === Ch.Cr) {
      i++;
    } else if (c === Ch.Minus && sql.charCodeAt(i + 1) === Ch.Minus) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === Ch.Slash && sql.charCodeAt(i + 1) === Ch.Star) {
      i = skipBlockComment(sql, i);
    } else if (c === Ch.Quote) {
      terms++;
      i = skipQuoted(sql, i, Ch.Quote, isEscapeString(sql, i));
    } else if (c === Ch.Dquote) {
      terms++;
      i = skipQuoted(sql, i, Ch.Dquote, false);
    } else if (c === Ch.Dollar) {
      terms++;
      i = skipDollar(sql, i);
    } else if (c === Ch.LParen || c === Ch.LBracket) {
      open(false);
      i++;
    } else if (c === Ch.RParen || c === Ch.RBracket) {
      close();
      i++;
    } else if (c === Ch.Comma || c === Ch.Semi) {
      endChain();
      i++;
    } else if (isOperatorChar(c)) {
      // A run of operator characters is one operator, except that PostgreSQL's scanner splits
      // trailing + and - off as prefix operators of their own (`1+-+-1` nests four deep): every
      // + or - after the first character counts as a level too.
      const start = i;
      while (i < n && isOperatorChar(sql.charCodeAt(i)) && !sql.startsWith('--', i) && !sql.startsWith('/*', i)) {
        const o = sql.charCodeAt(i);
        if (i > start && (o === Ch.Plus || o === Ch.Minus)) chain();
        i++;
      }
      chain();
    } else if (c >= Ch.Zero && c <= Ch.Nine) {
      terms++;
      i++;
      while (i < n && (isWordChar(sql.charCodeAt(i)) || sql.charCodeAt(i) === Ch.Dot)) i++;
    } else if (isWordStart(c)) {
      const start = i;
      i++;
      while (i < n && isWordChar(sql.charCodeAt(i))) i++;
      // E'…', U&'…', B'…', X'…' are one literal: the quote is read on the next turn.
      if (i < n && sql.charCodeAt(i) === Ch.Quote && i - start <= 2) continue;
      terms++;
      const len = i - start;
      if (len > 9) continue;
      const word = sql.slice(start, i).toUpperCase();
      // AND/OR arguments and CASE arms are flat lists in PostgreSQL's tree: each starts afresh.
      if (word === 'AND' || word === 'OR' || word === 'WHEN' || word === 'THEN' || word === 'ELSE') endChain();
      else if (word === 'CASE') open(true);
      else if (word === 'END') {
        if (caseGroup[caseGroup.length - 1]) close();
      } else if (CHAINING.has(word)) chain();
    } else {
      i++;
    }
  }
  return { depth: maxDepth, terms };
}

function skipBlockComment(sql: string, start: number): number {
  let level = 0;
  let i = start;
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      level++;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      level--;
      i += 2;
      if (level === 0) return i;
    } else {
      i++;
    }
  }
  return i;
}

/** E'…' (and e'…') strings take backslash escapes; the letter must start its own word. */
function isEscapeString(sql: string, quote: number): boolean {
  const prev = sql.charCodeAt(quote - 1);
  if (prev !== 69 && prev !== 101) return false;
  return quote < 2 || !isWordChar(sql.charCodeAt(quote - 2));
}

function skipQuoted(sql: string, start: number, quote: number, backslashes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslashes && c === Ch.Backslash) {
      i += 2;
    } else if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return i;
}

/** `$1` is a parameter; `$tag$…$tag$` (tag possibly empty) a dollar-quoted string. */
function skipDollar(sql: string, start: number): number {
  let i = start + 1;
  const first = sql.charCodeAt(i);
  if (first >= Ch.Zero && first <= Ch.Nine) {
    while (i < sql.length && sql.charCodeAt(i) >= Ch.Zero && sql.charCodeAt(i) <= Ch.Nine) i++;
    return i;
  }
  while (i < sql.length && isWordChar(sql.charCodeAt(i)) && sql.charCodeAt(i) !== Ch.Dollar) i++;
  if (sql.charCodeAt(i) !== Ch.Dollar) return i;
  const tag = sql.slice(start, i + 1);
  const end = sql.indexOf(tag, i + 1);
  return end < 0 ? sql.length : end + tag.length;
}

/**
 * The last texts that passed, with the limits they passed under: a statement meets the parser
 * several times (normalised for the shape cache, parsed, its rewrite parsed to verify it, both
 * normalised for the audit trail), each behind this check.
 */
const passed: Array<{ sql: string; limits: AnalysisLimits }> = [];
const PASSED_ENTRIES = 4;

/**
 * Refuses text over the byte, depth or term bounds, before the parser is called.
 * Throws ProxyError('statement_too_large' | 'statement_too_complex').
 */
export function checkText(sql: string, limits: AnalysisLimits = current): void {
  for (const p of passed) if (p.limits === limits && p.sql === sql) return;
  checkTextOnce(sql, limits);
  if (passed.length >= PASSED_ENTRIES) passed.shift();
  passed.push({ sql, limits });
}

function checkTextOnce(sql: string, limits: AnalysisLimits): void {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit: only long texts need counting.
  if (sql.length * 3 > limits.maxStatementBytes) {
    const bytes = Buffer.byteLength(sql, 'utf8');
    if (bytes > limits.maxStatementBytes) {
      throw new ProxyError('statement_too_large', {
        message: `the statement text is ${bytes} bytes; the limit is ${limits.maxStatementBytes}`,
      });
    }
  }
  const shape = scanShape(sql, { depth: limits.maxNestingDepth, terms: limits.maxTerms });
  if (shape.depth > limits.maxNestingDepth) {
    throw new ProxyError('statement_too_complex', {
      message: `the statement nests more than ${limits.maxNestingDepth} levels deep (parentheses, CASE and chained operators)`,
    });
  }
  if (shape.terms > limits.maxTerms) {
    throw new ProxyError('statement_too_complex', {
      message: `the statement has more than ${limits.maxTerms} terms`,
    });
  }
}
