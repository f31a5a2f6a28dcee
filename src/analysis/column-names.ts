// The name PostgreSQL gives a target written without AS (FigureColname in parse_target.c): what a
// reference to a derived table's column by that name means (expanded-size.ts).
import type { Node } from '@pgsql/types';

export function stringOf(node: Node | undefined): string | undefined {
  return node && 'String' in node ? (node.String as { sval?: string }).sval : undefined;
}

/**
 * The name PostgreSQL gives a target without AS (FigureColname in parse_target.c), or undefined
 * where this cannot tell: such a column may be the one any name means, so it is never counted
 * smaller than it is.
 */
export function figureName(node: Node | undefined): string | undefined {
  const figured = figure(node);
  if (figured === UNKNOWN) return undefined;
  return figured.strength === 0 ? '?column?' : figured.name;
}

const UNKNOWN = Symbol('unknown');

/**
 * FigureColnameInternal's answer: a name and its strength (2: a column's, a field's or a
 * function's; 1: a cast's type or CASE; 0: none, `?column?`), or UNKNOWN for a node it does not
 * model (SQLValueFunction, XML and JSON constructors, and whatever else).
 */
function figure(node: Node | undefined): { name: string; strength: 0 | 1 | 2 } | typeof UNKNOWN {
  const none = { name: '?column?', strength: 0 as const };
  if (!node) return none;
  const [type, body] = Object.entries(node)[0] ?? [];
  const b = (body ?? {}) as Record<string, unknown>;
  const lastString = (items: unknown): string | undefined => {
    let name: string | undefined;
    for (const item of (items ?? []) as Node[]) name = stringOf(item) ?? name;
    return name;
  };
  switch (type) {
    case 'ColumnRef': {
      const name = lastString(b.fields);
      return name === undefined ? none : { name, strength: 2 };
    }
    case 'A_Indirection': {
      // The last field name, past any subscripts; without one, the argument's name.
      const name = lastString(b.indirection);
      return name === undefined ? figure(b.arg as Node | undefined) : { name, strength: 2 };
    }
    case 'FuncCall':
      return { name: stringOf(((b.funcname ?? []) as Node[]).at(-1)) ?? '?column?', strength: 2 };
    case 'A_Expr':
      return b.kind === 'AEXPR_NULLIF' ? { name: 'nullif', strength: 2 } : none;
    case 'TypeCast': {
      const inner = figure(b.arg as Node | undefined);
      if (inner === UNKNOWN || inner.strength === 2) return inner;
      const typeName = stringOf((((b.typeName as { names?: Node[] } | undefined)?.names ?? []) as Node[]).at(-1));
      return typeName === undefined ? inner : { name: typeName, strength: 1 };
    }
    case 'CollateClause':
      return figure(b.arg as Node | undefined);
    case 'GroupingFunc':
      return { name: 'grouping', strength: 2 };
    case 'SubLink': {
      if (b.subLinkType === 'EXISTS_SUBLINK') return { name: 'exists', strength: 2 };
      if (b.subLinkType === 'ARRAY_SUBLINK') return { name: 'array', strength: 2 };
      if (b.subLinkType !== 'EXPR_SUBLINK') return none;
      // The name of the subquery's first output column, `*` expanded: unknown where it is a `*`.
      let select = (b.subselect as { SelectStmt?: SelectLike } | undefined)?.SelectStmt;
      while (select && select.op !== undefined && select.op !== 'SETOP_NONE') select = select.larg;
      const res = (select?.targetList?.[0] as { ResTarget?: { name?: string; val?: Node } } | undefined)?.ResTarget;
      if (!res) return UNKNOWN;
      if (res.name !== undefined) return { name: res.name, strength: 2 };
      const fields = (res.val as { ColumnRef?: { fields?: Node[] } } | undefined)?.ColumnRef?.fields;
      if (fields && fields.length > 0 && 'A_Star' in fields[fields.length - 1]) return UNKNOWN;
      const inner = figure(res.val);
      return inner === UNKNOWN ? UNKNOWN : { name: inner.strength === 0 ? '?column?' : inner.name, strength: 2 };
    }
    case 'CaseExpr': {
      // Named after its ELSE when that has a name of its own.
      const otherwise = figure(b.defresult as Node | undefined);
      if (otherwise === UNKNOWN) return UNKNOWN;
      return otherwise.strength <= 1 ? { name: 'case', strength: 1 } : otherwise;
    }
    case 'A_ArrayExpr':
      return { name: 'array', strength: 2 };
    case 'RowExpr':
      return { name: 'row', strength: 2 };
    case 'CoalesceExpr':
      return { name: 'coalesce', strength: 2 };
    case 'MinMaxExpr':
      return { name: b.op === 'IS_GREATEST' ? 'greatest' : 'least', strength: 2 };
    case 'A_Const':
    case 'BoolExpr':
    case 'ParamRef':
    case 'NullTest':
    case 'BooleanTest':
      return none;
    default:
      return UNKNOWN;
  }
}

interface SelectLike {
  op?: string;
  larg?: SelectLike;
  targetList?: Node[];
}
