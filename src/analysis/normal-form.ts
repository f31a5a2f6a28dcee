// PostgreSQL's normalisation of a read the proxy printed, taken from the verifying re-parse's tree instead of a third parse.
//
// The audit trail keeps the forwarded text with its literals as $n (audit/redact.ts), which is
// libpg-query's normalize (what pg_stat_statements shows). normalize parses the text again in
// WebAssembly; for a statement neither cache knows, that was the third parse of its text (56 µs
// of ~1 ms on the bench's first-seen statements). The forwarded text has just been parsed by the
// verifying re-parse (deparse.ts), whose tree holds every constant's location: the normal form is
// the text with each constant replaced, in the order and under the rules of libpg-query's own walk
// (src/pg_query_normalize.c, const_record_walker):
// - a constant becomes $n, numbered after the highest $n the text already has, in the order the
//   walk records constants (not their order in the text): a SELECT's DISTINCT, target list, FROM,
//   WHERE, GROUP BY, ORDER BY, HAVING, WINDOW, VALUES, OFFSET, LIMIT, locking, WITH, then a set
//   operation's two sides; every other node its fields in order;
// - a GROUP BY item takes the numbers of the first target of its shape (constants' values aside)
//   that no earlier item took;
// - constants inside a type name (typmods) are left, and so are `GROUP BY 1` and `ORDER BY 1`;
// - a negative number is one constant with its sign; a keyword the grammar makes a constant of
//   (EXTRACT's field, LIMIT ALL) is one token.
// Anything this does not model (a statement other than a SELECT, a GROUP BY item with a constant
// and no target to take its numbers from, an option list, SQL/JSON and XML nodes, a non-ASCII
// text, a prefixed string such as E'…') gives undefined, and the caller keeps normalize.
// test/unit/analysis/normal-form.test.ts compares the two on the read corpus of the shape cache's
// tests, analysed and printed, and on the bench's 2,000 first-seen statements.
import type { Node } from '@pgsql/types';
import { lexLiteral } from './literals';
import { POSITION_FIELDS } from './types';

/** Nodes whose constants the walk below does not number as libpg-query does (a node's key starts with a capital). */
const UNMODELLED = /^(?:DefElem|Json|Xml|CTESearchClause|CTECycleClause|OnConflictClause|IntoClause)/;
/** The same as fields of their parent, unwrapped: libpg-query's walk does not enter a CTE's SEARCH or CYCLE clause. */
const UNMODELLED_FIELDS = new Set(['search_clause', 'cycle_clause', 'intoClause', 'onConflictClause']);

class Unmodelled extends Error {}

/** Where a constant's number comes from: a new one (`fresh`, counted as libpg-query counts), or one already given. */
interface Recorded {
  at: number;
  fresh?: number;
  given?: Reference;
}

/** A number the walk has handed out or met: a constant's (fresh) or a parameter's ($n in the text). */
type Reference = { fresh: number } | { param: number };

interface Walk {
  consts: Recorded[];
  /** libpg-query's highest_normalize_param_id: the next fresh number. */
  next: number;
  highestParam: number;
  /** While a SELECT's target is walked: the numbers met in it (its param_refs). */
  refs?: Reference[];
  /** A SELECT inside the target: libpg-query then loses the target's numbers. */
  refsLost?: boolean;
}

const isIntegerConst = (node: unknown): boolean => {
  const c = (node as { A_Const?: { ival?: unknown } } | undefined)?.A_Const;
  return c !== undefined && 'ival' in c;
};

/** An expression's shape for matching a GROUP BY item with a target: its tree without positions and constants' values. */
function shapeOf(node: unknown): string {
  return JSON.stringify(node, (key, value: unknown) => (POSITION_FIELDS.has(key) ? undefined : key === 'A_Const' ? 0 : value));
}

/**
 * A looser shape, at least as loose as libpg-query's fingerprint where it matters here: a
 * constant, a parameter and a cast constant are one thing, and they drop out of lists (the
 * fingerprint takes `coalesce(a, 1, 2)` for `coalesce(a, 1)`, `a + '1'::int` for `a + 1`).
 */
function coarseShapeOf(node: unknown): string {
  const coarse = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(coarse).filter((i) => i !== CONSTANT);
    const node = value as Record<string, unknown>;
    if ('A_Const' in node || 'ParamRef' in node) return CONSTANT;
    const cast = node.TypeCast as { arg?: unknown } | undefined;
    if (cast && coarse(cast.arg) === CONSTANT) return CONSTANT;
    const out: Record<string, unknown> = {};
    for (const key in node) if (!POSITION_FIELDS.has(key)) out[key] = coarse(node[key]);
    return out;
  };
  return JSON.stringify(coarse(node));
}
const CONSTANT = '\u0000constant';

function visit(value: unknown, w: Walk, base: number, depth: number): void {
  if (value === null || typeof value !== 'object') return;
  if (depth > 2000) throw new Unmodelled();
  if (Array.isArray(value)) {
    for (const item of value) visit(item, w, base, depth + 1);
    return;
  }
  const node = value as Record<string, unknown>;
  for (const key in node) {
    const body = node[key];
    if (body === null || typeof body !== 'object') continue;
    const first = key.charCodeAt(0);
    if (first >= 65 && first <= 90 ? UNMODELLED.test(key) : UNMODELLED_FIELDS.has(key)) throw new Unmodelled();
    switch (key) {
      case 'A_Const': {
        const location = (body as { location?: number }).location;
        if (location !== undefined && location >= 0) {
          const fresh = w.next++;
          w.consts.push({ at: location - base, fresh });
          w.refs?.push({ fresh });
        }
        continue;
      }
      case 'ParamRef': {
        const n = (body as { number?: number }).number ?? 0;
        if (n > w.highestParam) w.highestParam = n;
        w.refs?.push({ param: n });
        continue;
      }
      // A type's modifiers (varchar(20)) and array bounds are not constants to normalize: as a
      // node, or as a cast's (or a column definition's) own field.
      case 'TypeName':
      case 'typeName':
        continue;
      case 'SelectStmt':
        selectStmt(body as Record<string, unknown>, w, base, depth + 1);
        continue;
      default:
        visit(body, w, base, depth + 1);
    }
  }
}

/** libpg-query's order for a SELECT, with its exceptions for GROUP BY and ORDER BY. */
function selectStmt(s: Record<string, unknown>, w: Walk, base: number, depth: number): void {
  if (w.refs) w.refsLost = true;
  visit(s.distinctClause, w, base, depth);
  visit(s.intoClause, w, base, depth);
  // Each target's numbers, for a GROUP BY item of the same shape.
  const targets: { val: unknown; refs?: Reference[]; shape?: string; coarse?: string }[] = [];
  for (const target of (s.targetList as unknown[] | undefined) ?? []) {
    w.refs = [];
    w.refsLost = false;
    visit(target, w, base, depth);
    targets.push({ val: (target as { ResTarget?: { val?: unknown } }).ResTarget?.val, refs: w.refsLost ? undefined : w.refs });
    w.refs = undefined;
    w.refsLost = false;
  }
  visit(s.fromClause, w, base, depth);
  visit(s.whereClause, w, base, depth);
  const items = ((s.groupClause as unknown[] | undefined) ?? []).filter((item) => !isIntegerConst(item));
  const added = items.map((item) => {
    const before = w.consts.length;
    visit(item, w, base, depth);
    return { before, count: w.consts.length - before };
  });
  // An item with constants takes the numbers of the first target of its shape that no earlier
  // item took (every item takes one, constants or not), when they are as many. libpg-query
  // compares fingerprints, which are looser than the shape: where the first target of the
  // looser shape is not the first of the shape, the two could pick different targets.
  if (added.some((a) => a.count > 0)) {
    for (let i = 0; i < items.length; i++) {
      const shape = shapeOf(items[i]);
      const coarse = coarseShapeOf(items[i]);
      const index = targets.findIndex((t) => (t.shape ??= shapeOf(t.val)) === shape);
      if (targets.findIndex((t) => (t.coarse ??= coarseShapeOf(t.val)) === coarse) !== index) throw new Unmodelled();
      const match = index >= 0 ? targets.splice(index, 1)[0] : undefined;
      const { before, count } = added[i];
      if (count === 0) continue;
      // No such target, or one whose numbers do not fit: normalize numbers the item afresh, after
      // the items before it gave theirs back; not modelled.
      if (!match?.refs || match.refs.length !== count) throw new Unmodelled();
      for (let k = 0; k < count; k++) w.consts[before + k] = { at: w.consts[before + k].at, given: match.refs[k] };
      w.next -= count;
    }
  }
  for (const item of (s.sortClause as unknown[] | undefined) ?? []) {
    if (isIntegerConst((item as { SortBy?: { node?: unknown } }).SortBy?.node)) continue;
    visit(item, w, base, depth);
  }
  visit(s.havingClause, w, base, depth);
  visit(s.windowClause, w, base, depth);
  visit(s.valuesLists, w, base, depth);
  visit(s.limitOffset, w, base, depth);
  visit(s.limitCount, w, base, depth);
  visit(s.lockingClause, w, base, depth);
  visit(s.withClause, w, base, depth);
  // A set operation's two sides are SELECTs as fields of their own (no SelectStmt key to meet).
  if (s.larg) selectStmt(s.larg as Record<string, unknown>, w, base, depth + 1);
  if (s.rarg) selectStmt(s.rarg as Record<string, unknown>, w, base, depth + 1);
}

/**
 * libpg-query's normalisation of `text`, a SELECT the proxy printed, from `stmt`, the tree the
 * verifying re-parse gave for it (its locations `base` bytes into the text parsed); undefined
 * where it is not modelled here (see the file comment).
 */
export function normalizedFromTree(text: string, stmt: Node, base: number): string | undefined {
  if (!('SelectStmt' in stmt) || /[^\x00-\x7f]/.test(text)) return undefined;
  const w: Walk = { consts: [], next: 1, highestParam: 0 };
  try {
    visit(stmt, w, base, 0);
  } catch (err) {
    if (err instanceof Unmodelled) return undefined;
    throw err;
  }
  // Numbered in the order recorded (after the text's own parameters), replaced in the order of the text.
  const number = (ref: Reference): number => ('param' in ref ? ref.param : w.highestParam + ref.fresh);
  const order = w.consts.map((c) => ({ at: c.at, n: number(c.given ?? { fresh: c.fresh! }) })).sort((a, b) => a.at - b.at);
  let out = '';
  let pos = 0;
  for (const { at, n } of order) {
    // The same location twice, or a constant inside the previous one: normalize skips it.
    if (at < pos) return undefined;
    const end = constantEnd(text, at);
    if (end === undefined) return undefined;
    out += `${text.slice(pos, at)}$${n}`;
    pos = end;
  }
  return out + text.slice(pos);
}

const WORD = /[A-Za-z_][A-Za-z0-9_$]*/y;

/**
 * Where the constant at `at` ends: a literal, or a keyword the grammar made a constant of
 * (EXTRACT's field, LIMIT ALL), which normalize replaces as one token too. A prefixed string
 * (E'…', B'…', X'…', N'…', U&'…') is not read: undefined.
 */
function constantEnd(text: string, at: number): number | undefined {
  const literal = lexLiteral(text, at);
  if (literal) return literal.end;
  WORD.lastIndex = at;
  const word = WORD.exec(text);
  if (!word) return undefined;
  const end = at + word[0].length;
  return text[end] === "'" || text[end] === '&' ? undefined : end;
}
