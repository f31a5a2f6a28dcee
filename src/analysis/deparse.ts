// Deparse and verify: the forwarded text is always printed from the tree, re-parsed, and must give that tree back.
//
// pgsql-deparser is good but not perfect: it prints `(ARRAY[1,2])[1]` without its
// parentheses (a syntax error) and drops `FETCH FIRST ... WITH TIES` (a different query);
// ProxyDeparser prints that, SET TIME ZONE INTERVAL, quoted SHOW names and SET values with
// quotes in them.
// So every printed statement is parsed again with PostgreSQL's grammar and compared with
// the tree that was meant, node for node except source positions. Any difference, and any
// deparser exception, refuses the statement: the proxy never forwards a guess.
import type { DeallocateStmt, ExecuteStmt, Node, PrepareStmt, SelectStmt as SelectStmtNode, TransactionStmt, TypeCast, VariableSetStmt, VariableShowStmt } from '@pgsql/types';
import { Deparser, QuoteUtils } from 'pgsql-deparser';
import { ProxyError } from '../errors/catalogue';
import { statementName } from './labels';
import { normalizedFromTree } from './normal-form';
import { parseStatements, rememberNormalized } from './parser';
import { nodeBody, nodeTypeOf, POSITION_FIELDS } from './types';

type DeparserContext = Parameters<Deparser['TransactionStmt']>[1];

/** Interval typmods as PostgreSQL's grammar builds them (datetime.h INTERVAL_MASK, INTERVAL_FULL_RANGE). */
const ZONE_HOUR = 1 << 10;
const ZONE_HOUR_TO_MINUTE = (1 << 10) | (1 << 11);
const INTERVAL_FULL_RANGE = 0x7fff;

/** pgsql-deparser with slips corrected that would otherwise refuse allowed statements. */
class ProxyDeparser extends Deparser {
  // A SELECT inside an UPDATE's SET (or an INSERT's column list) inherits the flag that prints
  // `name = value` / bare names, so `SELECT x AS email` came out as `SELECT email = x`.
  override SelectStmt(node: SelectStmtNode, context: DeparserContext): string {
    const { update, insertColumns } = context as { update?: boolean; insertColumns?: boolean };
    if (!update && !insertColumns) return this.select(node, context);
    const flags = context as { update?: boolean; insertColumns?: boolean };
    flags.update = false;
    flags.insertColumns = false;
    try {
      return this.select(node, context);
    } finally {
      flags.update = update;
      flags.insertColumns = insertColumns;
    }
  }

  /**
   * FETCH FIRST n ROWS WITH TIES came out as LIMIT n (a different query). The rest of the
   * statement is printed without its limit clause, then `[OFFSET m] FETCH FIRST (n) ROWS WITH TIES`
   * (the grammar takes only a constant or a parenthesised expression there; parentheses add no
   * node). With a locking clause, which would have to follow, the slip is left for the
   * round-trip check to refuse.
   */
  private select(node: SelectStmtNode, context: DeparserContext): string {
    if (node.limitOption !== 'LIMIT_OPTION_WITH_TIES' || !node.limitCount || node.lockingClause) return super.SelectStmt(node, context);
    const head = super.SelectStmt({ ...node, limitCount: undefined, limitOffset: undefined, limitOption: 'LIMIT_OPTION_DEFAULT' }, context);
    const offset = node.limitOffset ? ` OFFSET ${this.visit(node.limitOffset, context)}` : '';
    return `${head}${offset} FETCH FIRST (${this.visit(node.limitCount, context)}) ROWS WITH TIES`;
  }

  /**
   * `SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE` (Sequelize's connect) came out as a CAST,
   * which the grammar does not take there. PostgreSQL's zone_value accepts an interval only as
   * `INTERVAL 'text' [HOUR | HOUR TO MINUTE]` or `INTERVAL(p) 'text'`, and parses it into a cast
   * of a string constant to pg_catalog.interval whose typmods are the field mask (HOUR = 1 << 10,
   * MINUTE = 1 << 11) or INTERVAL_FULL_RANGE (0x7FFF) and the precision. That is printed back
   * here; any other shape is left to the base printer and the round-trip check.
   */
  override VariableSetStmt(node: VariableSetStmt, context: DeparserContext): string {
    const arg = node.kind === 'VAR_SET_VALUE' && node.name === 'timezone' && node.args?.length === 1 ? node.args[0] : undefined;
    const interval = arg && 'TypeCast' in arg ? this.zoneInterval(arg.TypeCast, context) : undefined;
    const local = node.is_local ? 'LOCAL ' : '';
    if (interval !== undefined) return `SET ${local}TIME ZONE ${interval}`;
    // A value with a quote in it ('O''Brien') came out between quotes without the quote doubled.
    // Printed here as string constants are everywhere else; the TIME ZONE spelling is kept.
    const quoted = node.kind === 'VAR_SET_VALUE' && (node.args ?? []).some((a) => 'A_Const' in a && (a.A_Const.sval?.sval ?? '').includes("'"));
    if (!quoted) return super.VariableSetStmt(node, context);
    const values = (node.args ?? []).map((a) => this.visit(a, context)).join(', ');
    if (node.jumble_args && node.name === 'timezone') return `SET ${local}TIME ZONE ${values}`;
    return `SET ${local}${QuoteUtils.quoteIdentifier(node.name ?? '')} TO ${values}`;
  }

  private zoneInterval(cast: TypeCast, context: DeparserContext): string | undefined {
    const names = (cast.typeName?.names ?? []).map((n) => ('String' in n ? n.String.sval : undefined));
    const literal = cast.arg && 'A_Const' in cast.arg && cast.arg.A_Const.sval ? this.visit(cast.arg, context) : undefined;
    if (literal === undefined || names.join('.') !== 'pg_catalog.interval' || cast.typeName?.arrayBounds) return undefined;
    const mods = (cast.typeName?.typmods ?? []).map((m) => ('A_Const' in m && m.A_Const.ival ? (m.A_Const.ival.ival ?? 0) : undefined));
    if (mods.length === 0) return `INTERVAL ${literal}`;
    if (mods.length === 1 && mods[0] === ZONE_HOUR) return `INTERVAL ${literal} HOUR`;
    if (mods.length === 1 && mods[0] === ZONE_HOUR_TO_MINUTE) return `INTERVAL ${literal} HOUR TO MINUTE`;
    if (mods.length === 2 && mods[0] === INTERVAL_FULL_RANGE && mods[1] !== undefined) return `INTERVAL(${mods[1]}) ${literal}`;
    return undefined;
  }

  /**
   * `CAST(x AS pg_catalog.text)` (psql's `\dT+` and `\dp`) came out as `x::text`: the base printer
   * drops the schema of a pg_catalog type in the `::` form, and an unqualified name is resolved by
   * search_path, so it parses back to another tree. A type the printer keeps qualified is printed
   * with CAST(… AS …), which takes any type name (the base printer's own choice for such a type
   * when it does not drop the schema); the grammar's own type names (int, numeric…) come out
   * unqualified and are left to it. The argument is printed once: printing it for the base printer
   * and again here doubled the work at every level of nested casts.
   */
  override TypeCast(node: TypeCast, context: DeparserContext): string {
    const type = node.typeName && node.arg ? this.TypeName(node.typeName, context) : '';
    if (!type.startsWith('pg_catalog.')) return super.TypeCast(node, context);
    return `CAST(${this.visit(node.arg!, context)} AS ${type})`;
  }

  // SHOW "TimeZone" came out unquoted, which folds to another name in the tree (PostgreSQL
  // compares setting names case-insensitively, the tree does not).
  override VariableShowStmt(node: VariableShowStmt, context: DeparserContext): string {
    const name = node.name ?? '';
    if (!/[A-Z]/.test(name)) return super.VariableShowStmt(node, context);
    return `SHOW "${name.replace(/"/g, '""')}"`;
  }

  // A prepared statement's name came out unquoted: "P" folds to p, "a b" does not parse. The base
  // printer is given a plain placeholder name, which is then replaced by the name as an identifier.
  override PrepareStmt(node: PrepareStmt, context: DeparserContext): string {
    return withName(node.name, (name) => super.PrepareStmt({ ...node, name }, context));
  }

  override ExecuteStmt(node: ExecuteStmt, context: DeparserContext): string {
    return withName(node.name, (name) => super.ExecuteStmt({ ...node, name }, context));
  }

  override DeallocateStmt(node: DeallocateStmt, context: DeparserContext): string {
    return withName(node.name, (name) => super.DeallocateStmt({ ...node, name }, context));
  }

  // COMMIT AND CHAIN / ROLLBACK AND CHAIN come out without AND CHAIN.
  override TransactionStmt(node: TransactionStmt, context: DeparserContext): string {
    const text = super.TransactionStmt(node, context);
    return node.chain && !/ AND CHAIN$/.test(text) ? `${text} AND CHAIN` : text;
  }
}

const NAME_PLACEHOLDER = 'ormai_statement_name';

/** Prints with `print`, given a placeholder for `name` (one the base printer leaves bare), then puts the name in, quoted where it must be. */
function withName(name: string | undefined, print: (name: string | undefined) => string): string {
  if (name === undefined || QuoteUtils.quoteIdentifier(name) === name) return print(name);
  const text = print(NAME_PLACEHOLDER);
  const at = text.indexOf(NAME_PLACEHOLDER);
  return at < 0 ? text : `${text.slice(0, at)}${QuoteUtils.quoteIdentifier(name)}${text.slice(at + NAME_PLACEHOLDER.length)}`;
}

/**
 * Prints each statement, then parses all printed statements together (exactly as they will be
 * forwarded, joined with '; ') and checks that they come back as the same trees. Returns the
 * text of each statement; throws ProxyError('statement_not_understood') otherwise.
 */
export function deparseVerified(stmts: Node[]): string[] {
  const texts = stmts.map(deparseOne);
  let reparsed: Node[];
  try {
    reparsed = parseStatements(texts.join('; '));
  } catch (err) {
    const reason = err instanceof ProxyError ? err.message : String(err);
    throw notReproduced(stmts[0], `printed text does not parse: ${reason}`);
  }
  if (reparsed.length !== stmts.length) {
    throw notReproduced(stmts[0], `printed ${stmts.length} statement(s), parsed back ${reparsed.length}`);
  }
  for (let i = 0; i < stmts.length; i++) {
    let same: boolean;
    try {
      same = sameTree(stmts[i], reparsed[i]);
    } catch (err) {
      // A tree deep enough to exhaust the stack cannot be vouched for.
      throw notReproduced(stmts[i], `comparison failed: ${String(err)}`);
    }
    if (!same) throw notReproduced(stmts[i], 'parsed back to a different tree');
  }
  // The audit trail keeps each forwarded text normalised: the tree just parsed gives that without
  // another parse (normal-form.ts).
  let base = 0;
  for (let i = 0; i < texts.length; i++) {
    const normal = normalizedFromTree(texts[i], reparsed[i], base);
    if (normal !== undefined) rememberNormalized(texts[i], normal);
    base += Buffer.byteLength(texts[i], 'utf8') + 2;
  }
  return texts;
}

export function deparseOne(stmt: Node): string {
  try {
    return new ProxyDeparser(stmt, { pretty: false }).deparseQuery();
  } catch (err) {
    throw notReproduced(stmt, `deparser: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function notReproduced(stmt: Node, why: string): ProxyError {
  const type = nodeTypeOf(stmt);
  const construct = knownConstruct(stmt);
  return new ProxyError('statement_not_understood', {
    message: construct
      ? `${construct.name} is not supported by the proxy`
      : `the proxy cannot reproduce this ${statementName(type, nodeBody(stmt))} statement exactly`,
    ...(construct ? { hint: construct.hint } : {}),
    // Node type and reason only: statement text can carry row values, which stay out of logs.
    logMessage: `deparse/verify ${type}: ${why}`,
  });
}

const JSON_FUNCTIONS: Record<string, string> = {
  JSON_QUERY_OP: 'JSON_QUERY',
  JSON_VALUE_OP: 'JSON_VALUE',
  JSON_EXISTS_OP: 'JSON_EXISTS',
};

/**
 * Constructs the deparser is known not to print faithfully, so that the refusal can name what
 * to change instead of asking the agent to guess. Looked for only once a statement has failed.
 */
function knownConstruct(stmt: Node): { name: string; hint: string } | undefined {
  const stack: unknown[] = [stmt];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push(value[i]); // first in the text, first found
      continue;
    }
    const node = value as Record<string, unknown>;
    if ('JsonTable' in node) return { name: 'JSON_TABLE', hint: 'Use jsonb_to_recordset(...) or jsonb_array_elements(...) in FROM instead.' };
    if ('RangeTableFunc' in node) return { name: 'XMLTABLE', hint: 'Read the document with xpath(...) instead, or select the column as text.' };
    const json = node.JsonFuncExpr as { op?: string } | undefined;
    if (json) {
      return {
        name: JSON_FUNCTIONS[json.op ?? ''] ?? 'this SQL/JSON function',
        hint: 'Use jsonb_path_query_first(doc, path), jsonb_path_exists(doc, path) or the -> and ->> operators instead.',
      };
    }
    if (node.limitOption === 'LIMIT_OPTION_WITH_TIES') {
      return { name: 'FETCH FIRST … WITH TIES', hint: 'Use LIMIT n, or rank() OVER (ORDER BY …) in a subquery and filter on the rank.' };
    }
    stack.push(...Object.values(node).reverse());
  }
  return undefined;
}

/**
 * Structural equality of two parse trees, ignoring source positions. A key whose value is
 * undefined counts as absent, so a rewrite may build nodes with optional fields left unset.
 */
export function sameTree(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameTree(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let count = 0;
  for (const key in ra) {
    if (POSITION_FIELDS.has(key) || ra[key] === undefined) continue;
    if (!sameTree(ra[key], rb[key])) return false;
    count++;
  }
  for (const key in rb) {
    if (!POSITION_FIELDS.has(key) && rb[key] !== undefined) count--;
  }
  return count === 0;
}
