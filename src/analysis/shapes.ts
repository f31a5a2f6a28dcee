// The normalised statement cache: simple-protocol reads that differ only in their literals share one analysis.
//
// An agent's SQL repeats its shapes with new values (`WHERE id = 41`, then `= 42`): the exact-text
// cache misses every time, and each miss is a full parse, rewrite, deparse and verifying re-parse.
// Here a text is keyed by PostgreSQL's own normalisation (libpg-query's normalize, what
// pg_stat_statements shows: every constant becomes $n), and the forwarded text of a known shape
// is the analysed text of an earlier statement with the new literals spliced in.
//
// Why that is the same as analysing the text afresh, and where it is not used:
// - Only a single SELECT read is cached, and only its "value" literals are lifted: integers,
//   numerics and standard '...' strings. NULL, TRUE and FALSE are part of the key, as written; a
//   text with any other literal form (E'…', $$…$$, B'…', U&'…', 0x1F, a string continued on the
//   next line) is not cached by shape at all.
// - Literals whose value the analysis reads are part of the key too ("pinned"): the argument of a
//   reg* cast or of a function outside the curated pure built-ins (a catalog helper, say), and any
//   literal of a comparison with a tenant column, through any alias (tenant_forged is decided on it).
// - A template is made only from the second statement of a shape whose pinned literals are the
//   same: its analysed tree is printed with a marker where each lifted literal was (by the
//   literal's source location, which the rewrite keeps on the nodes it copies), and the template
//   must then reproduce, literal for literal, both statements' own analysed texts; every lifted
//   literal must appear in it; and everything else the analysis said (kind, row limit, flags,
//   tables) must be equal. Anything else: no template, every statement analysed.
// - A spliced literal is the agent's token as PostgreSQL's scanner delimited it (the literal spans
//   are checked against the normaliser's own output, character for character), integers printed
//   as numbers. test/unit/analysis/shapes.test.ts runs a corpus of 35 read shapes with three
//   sets of literals each and compares every answer from a template with a fresh analysis, as
//   parse trees (and every other field the session reads).
import type { Node } from '@pgsql/types';
import { LRUCache } from 'lru-cache';
import { deparseOne } from './deparse';
import { isBuiltinFunction } from './functions';
import { CATALOG_FUNCTIONS, REG_TYPES } from './function-allowlist';
import { normalizeText, parseStatements } from './parser';
import { lexLiteral, type LiteralKind } from './literals';
import { tenantComparisons } from './tenant-compare';
import { REGCONFIG_FUNCTIONS } from './schema-names';
import type { Analysis, AnalyzedStatement } from './types';

export interface LiteralSlot {
  /** Character offsets in the text. */
  start: number;
  end: number;
  /** Byte offset of the start: the location PostgreSQL gives the constant. */
  at: number;
  kind: LiteralKind;
  text: string;
}

/**
 * The literals of `sql` exactly where PostgreSQL's normalisation put its placeholders: the text
 * and the normalised text must agree on every other character. Undefined when they cannot be
 * told apart that way (a literal form not read here, or parameter symbols in the text).
 */
export function literalSlots(sql: string, normalized: string): LiteralSlot[] | undefined {
  if (/\$\d/.test(sql)) return undefined;
  const ascii = !/[^\x00-\x7f]/.test(sql);
  const slots: LiteralSlot[] = [];
  let i = 0;
  let j = 0;
  while (j < normalized.length) {
    if (normalized[j] === '$' && normalized[j + 1] >= '0' && normalized[j + 1] <= '9') {
      let k = j + 1;
      while (normalized[k] >= '0' && normalized[k] <= '9') k++;
      const lit = lexLiteral(sql, i);
      if (!lit) return undefined;
      slots.push({ start: i, end: lit.end, at: ascii ? i : Buffer.byteLength(sql.slice(0, i), 'utf8'), kind: lit.kind, text: sql.slice(i, lit.end) });
      i = lit.end;
      j = k;
      continue;
    }
    if (sql[i] !== normalized[j]) return undefined;
    i++;
    j++;
  }
  return i === sql.length ? slots : undefined;
}

const LIFTED = new Set<LiteralKind>(['int', 'num', 'str']);

/** How a lifted literal is spliced: integers as numbers (as the deparser prints them), others as the token. */
function rendered(slot: LiteralSlot): string {
  if (slot.kind === 'int') {
    const negative = slot.text.startsWith('-');
    const n = Number(slot.text.replace(/^-\s*/, ''));
    return negative && n !== 0 ? `-${n}` : String(n);
  }
  return slot.kind === 'num' ? slot.text.replace(/^-\s*/, '-') : slot.text;
}

/**
 * Byte locations of the constants whose value the analysis reads (see the file comment): inside a
 * reg* cast, an argument of a function outside the pure built-ins, or a comparison with a tenant column.
 */
function pinnedLocations(stmt: Node, tenantColumns: ReadonlySet<string>): Set<number> {
  // Every constant of a comparison with a tenant column: tenant_forged reads them (tenant-compare.ts).
  const pinned = new Set<number>(tenantComparisons(stmt, tenantColumns).flatMap((c) => c.locations));
  const visit = (value: unknown, pin: boolean): void => {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, pin);
      return;
    }
    const node = value as Record<string, unknown>;
    for (const type in node) {
      const body = node[type];
      if (body === null || typeof body !== 'object') continue;
      let inner = pin;
      if (type === 'A_Const' && pin) {
        const location = (body as { location?: number }).location;
        if (location !== undefined) pinned.add(location);
      } else if (type === 'TypeCast') {
        const names = ((body as { typeName?: { names?: Node[] } }).typeName?.names ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
        if (REG_TYPES.has((names[names.length - 1] ?? '').replace(/^_/, ''))) inner = true;
      } else if (type === 'FuncCall') {
        const names = ((body as { funcname?: Node[] }).funcname ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
        const name = names[names.length - 1] ?? '';
        const system = names.length === 1 || (names.length === 2 && names[0] === 'pg_catalog');
        // A text search function's configuration is checked by its value (schema-names.ts, checkConfigArgument).
        if (!system || !isBuiltinFunction(name) || CATALOG_FUNCTIONS.includes(name) || REGCONFIG_FUNCTIONS.has(name)) inner = true;
      } else if (type === 'RangeTableSample') {
        inner = true;
      }
      visit(body, inner);
    }
  };
  visit(stmt, false);
  return pinned;
}

interface Template {
  /** The forwarded text around the literals: parts.length = holes.length + 1. */
  parts: string[];
  /** For each hole, the slot whose literal goes there. */
  holes: number[];
  /** The analysed statement (its tree holds the first statement's values: consumers of a read's tree read its shape only). */
  statement: AnalyzedStatement;
  tags: Record<string, string>;
}

/** Slots whose literal is part of the key (lexically, or because the analysis reads its value). */
interface Shape {
  pinned: number[];
}

/** Per shape and value of its pinned literals: the first statement seen, then the template a second made, or null (none can be made). */
type Entry = { slots: LiteralSlot[]; analysis: Analysis } | Template | null;

/**
 * A lifted literal is replaced, for printing, by a constant of its own kind that names its slot
 * (so the printer treats it as it treats the literal): 'ormaimark987650003', 987650003, 987650003.5.
 */
const MARKER_BASE = 987_650_000;
const MARKER = /'ormaimark(98765\d{4})'|(?<![\w.$])(98765\d{4})(\.5)?(?![\w.])/g;

function markerConst(kind: LiteralKind, slot: number): Record<string, unknown> {
  const n = MARKER_BASE + slot;
  if (kind === 'str') return { sval: { sval: `ormaimark${n}` } };
  if (kind === 'int') return { ival: { ival: n } };
  return { fval: { fval: `${n}.5` } };
}

export interface ShapeStats {
  hits: number;
  shapes: number;
}

/** Texts longer than this are not cached by shape: they are rare, and their samples large. */
const MAX_TEXT = 16 * 1024;

/**
 * Shapes of simple-protocol statements, shared by every session (the key says whose scope and
 * tenant). Bounded in entries and in bytes: `size` estimates what an entry holds (cache.ts).
 */
export class ShapeCache {
  private readonly shapes: LRUCache<string, Shape>;
  private readonly entries: LRUCache<string, { value: Entry }>;
  hits = 0;

  constructor(
    private readonly size: (key: string, analysis: Analysis) => number = () => 1024,
    maxBytes = 16 * 1024 * 1024,
    maxShapes = 5000,
  ) {
    this.shapes = new LRUCache<string, Shape>({ max: maxShapes });
    this.entries = new LRUCache<string, { value: Entry }>({ max: maxShapes * 4, maxSize: maxBytes, maxEntrySize: maxBytes / 4 });
  }

  stats(): ShapeStats {
    return { hits: this.hits, shapes: this.shapes.size };
  }

  private store(key: string, value: Entry): void {
    const analysis = value === null ? undefined : 'parts' in value ? undefined : value.analysis;
    const bytes = value === null ? 64 : 'parts' in value ? this.size(key, { ok: true, sql: value.parts.join(''), statements: [value.statement], tags: value.tags }) : this.size(key, analysis!);
    if (bytes <= this.entries.maxEntrySize) this.entries.set(key, { value }, { size: Math.max(1, bytes) });
  }

  /**
   * The analysis of `sql`: a template's, when its shape has one, else compute()'s (which is then
   * learned from). `prefix` holds everything else the analysis depends on (scope, tenant, protocol).
   */
  analyze(sql: string, prefix: string, tenantColumns: ReadonlySet<string>, compute: (onParsed?: (nodes: readonly Node[]) => void) => Analysis): Analysis {
    if (sql.includes('\0') || sql.length > MAX_TEXT) return compute();
    let normalized: string;
    try {
      normalized = normalizeText(sql);
    } catch {
      return compute();
    }
    const slots = literalSlots(sql, normalized);
    if (!slots) return compute();
    const lexical = slots.map((s) => (LIFTED.has(s.kind) ? s.kind : `=${s.text}`)).join('\u0001');
    const key = `${prefix}\u0000${normalized}\u0000${lexical}`;
    const shape = this.shapes.get(key);
    if (shape) {
      const entryKey = `${key}\u0002${shape.pinned.map((i) => slots[i].text).join('\u0001')}`;
      const known = this.entries.get(entryKey)?.value;
      if (known && 'parts' in known) {
        this.hits++;
        return spliced(known, slots, sql);
      }
      const analysis = compute();
      if (known === undefined) this.store(entryKey, { slots, analysis });
      else if (known !== null) this.store(entryKey, template(known, { slots, analysis }, shape.pinned) ?? null);
      return analysis;
    }
    // The analysis's own parse of the text, when it ran one (not when the statement cache answered).
    let parsed: readonly Node[] | undefined;
    const analysis = compute((nodes) => (parsed = nodes));
    const pinned = pinnedSlots(sql, slots, analysis, tenantColumns, parsed);
    if (pinned) {
      this.shapes.set(key, { pinned });
      this.store(`${key}\u0002${pinned.map((i) => slots[i].text).join('\u0001')}`, { slots, analysis });
    }
    return analysis;
  }
}

/** The slots kept in the key, or undefined when the statement is not one whose shape is cached. `parsed`: the agent's trees, if already at hand. */
function pinnedSlots(sql: string, slots: LiteralSlot[], analysis: Analysis, tenantColumns: ReadonlySet<string>, parsed?: readonly Node[]): number[] | undefined {
  if (!cacheable(analysis)) return undefined;
  let stmts: readonly Node[];
  try {
    stmts = parsed ?? parseStatements(sql);
  } catch {
    return undefined;
  }
  if (stmts.length !== 1) return undefined;
  const locations = pinnedLocations(stmts[0], tenantColumns);
  return slots.flatMap((s, i) => (!LIFTED.has(s.kind) || locations.has(s.at) ? [i] : []));
}

function cacheable(analysis: Analysis): analysis is Extract<Analysis, { ok: true }> {
  if (!analysis.ok || analysis.statements.length !== 1) return false;
  const s = analysis.statements[0];
  return s.kind === 'read' && s.nodeType === 'SelectStmt' && s.write === undefined && s.body === undefined && s.writes.length === 0;
}

/** What an analysis said besides its text and tree: must be the same for every statement of a shape. */
function verdict(s: AnalyzedStatement): string {
  return JSON.stringify({ kind: s.kind, nodeType: s.nodeType, writes: s.writes, flags: s.flags ?? [], rowLimit: s.rowLimit ?? null, paramTypes: s.paramTypes ?? null });
}

/**
 * A template from the second statement of a shape, or undefined when it does not reproduce both
 * statements' analysed texts exactly (see the file comment).
 */
function template(first: { slots: LiteralSlot[]; analysis: Analysis }, second: { slots: LiteralSlot[]; analysis: Analysis }, pinned: readonly number[]): Template | undefined {
  const a = first.analysis;
  const b = second.analysis;
  if (!cacheable(a) || !cacheable(b)) return undefined;
  const [sa, sb] = [a.statements[0], b.statements[0]];
  if (verdict(sa) !== verdict(sb) || JSON.stringify(a.tags) !== JSON.stringify(b.tags)) return undefined;
  const lifted = second.slots.flatMap((s, i) => (pinned.includes(i) ? [] : [i]));
  if (lifted.length === 0) return undefined;
  const byLocation = new Map(lifted.map((i) => [second.slots[i].at, i]));
  // The second statement's tree with a marker in place of each lifted literal.
  let marked = 0;
  const tree = mark(sb.stmt, byLocation, second.slots, () => marked++);
  let text: string;
  try {
    text = deparseOne(tree);
  } catch {
    return undefined;
  }
  const parts: string[] = [];
  const holes: number[] = [];
  let last = 0;
  for (const m of text.matchAll(MARKER)) {
    const slot = Number(m[1] ?? m[2]) - MARKER_BASE;
    const kind = m[1] !== undefined ? 'str' : m[3] !== undefined ? 'num' : 'int';
    // A number that only looks like a marker (a pinned literal, say): no template.
    if (second.slots[slot]?.kind !== kind) return undefined;
    parts.push(text.slice(last, m.index));
    holes.push(slot);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  // Every marker found is one placed, every lifted literal is in the text, and no literal follows a '-' (a '--' would start a comment).
  if (holes.length !== marked || lifted.some((i) => !holes.includes(i)) || parts.slice(0, -1).some((p) => p.endsWith('-'))) return undefined;
  const t: Template = { parts, holes, statement: { ...sb, sql: '', agentSql: undefined }, tags: b.tags };
  t.statement.shape = t;
  if (render(t, first.slots) !== sa.sql || render(t, second.slots) !== sb.sql) return undefined;
  return t;
}

/** A copy of the tree with each lifted constant (by its location) replaced by its marker. */
function mark(node: unknown, byLocation: ReadonlyMap<number, number>, slots: readonly LiteralSlot[], count: () => void): Node {
  const copy = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(copy);
    const obj = value as Record<string, unknown>;
    const aConst = obj.A_Const as { location?: number } | undefined;
    if (aConst && Object.keys(obj).length === 1 && aConst.location !== undefined && byLocation.has(aConst.location)) {
      count();
      const slot = byLocation.get(aConst.location)!;
      return { A_Const: { ...markerConst(slots[slot].kind, slot), location: aConst.location } };
    }
    const out: Record<string, unknown> = {};
    for (const k in obj) out[k] = copy(obj[k]);
    return out;
  };
  return copy(node) as Node;
}

function render(t: Template, slots: readonly LiteralSlot[]): string {
  let out = t.parts[0];
  for (let h = 0; h < t.holes.length; h++) out += rendered(slots[t.holes[h]]) + t.parts[h + 1];
  return out;
}

function spliced(t: Template, slots: readonly LiteralSlot[], sql: string): Analysis {
  const text = render(t, slots);
  return { ok: true, sql: text, statements: [{ ...t.statement, sql: text, agentSql: sql }], tags: t.tags };
}
