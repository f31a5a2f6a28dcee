// information_schema.tables and .columns answered from the policy, and ormai.approvals from the approvals store: VALUES lists of only what the agent may see.
import type { Node, RangeVar, ResTarget, SelectStmt } from '@pgsql/types';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { visibleType } from './derived';
import { cloneTree, intConst, parseTemplate, stringConst } from './nodes';

type Kind = 'text' | 'int' | 'timestamptz';
type Value = string | number | null;

const TABLE_COLUMNS: Array<[string, Kind]> = [
  ['table_catalog', 'text'],
  ['table_schema', 'text'],
  ['table_name', 'text'],
  ['table_type', 'text'],
];

const COLUMN_COLUMNS: Array<[string, Kind]> = [
  ['table_catalog', 'text'],
  ['table_schema', 'text'],
  ['table_name', 'text'],
  ['column_name', 'text'],
  ['ordinal_position', 'int'],
  ['column_default', 'text'],
  ['is_nullable', 'text'],
  ['data_type', 'text'],
  ['character_maximum_length', 'int'],
  ['udt_name', 'text'],
  ['ormai_mask', 'text'],
];

/** Built once per compiled scope: the answer depends on the policy and catalog, not on the principal. */
const cache = new WeakMap<ReadScope, Map<string, SelectStmt>>();

/** `(VALUES ...) AS <alias>(<standard column names>)`, or an empty typed SELECT when nothing is visible. */
export function virtualTable(name: 'tables' | 'columns', rv: RangeVar, scope: ReadScope): Node {
  let byName = cache.get(scope);
  if (!byName) {
    byName = new Map();
    cache.set(scope, byName);
  }
  let select = byName.get(name);
  if (!select) {
    select = name === 'tables' ? build(TABLE_COLUMNS, tableRows(scope)) : build(COLUMN_COLUMNS, columnRows(scope));
    byName.set(name, select);
  }
  const columns = name === 'tables' ? TABLE_COLUMNS : COLUMN_COLUMNS;
  return {
    RangeSubselect: {
      subquery: { SelectStmt: cloneTree(select) },
      alias: { aliasname: rv.alias?.aliasname ?? rv.relname, colnames: columns.map(([c]) => ({ String: { sval: c } })) },
    },
  };
}

function sortedTables(scope: ReadScope): ScopedTable[] {
  // Code-unit order, not the host's locale: the same scope always prints the same text.
  const key = (t: ScopedTable): string => `${t.schema}\u0000${t.name}`;
  return [...scope.tables.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function tableRows(scope: ReadScope): Value[][] {
  return sortedTables(scope).map((t) => {
    const kind = scope.catalog.relations.get(`${t.schema}.${t.name}`)?.kind;
    return [scope.catalog.database, t.schema, t.name, kind === 'v' || kind === 'm' ? 'VIEW' : 'BASE TABLE'];
  });
}

function columnRows(scope: ReadScope): Value[][] {
  const rows: Value[][] = [];
  for (const t of sortedTables(scope)) {
    t.columns.forEach((c, i) => {
      const type = visibleType(c);
      rows.push([
        scope.catalog.database,
        t.schema,
        t.name,
        c.name,
        i + 1,
        null,
        // The null strategy makes every value NULL, whatever the column's constraint.
        c.notNull && c.mask !== 'null' ? 'NO' : 'YES',
        dataType(type),
        maxLength(type),
        null,
        c.mask ?? null,
      ]);
    });
  }
  return rows;
}

/** information_schema's spelling: the type without its modifiers ('character varying(120)' → 'character varying'). */
export function dataType(type: string): string {
  if (type.endsWith('[]')) return 'ARRAY';
  return type.replace(/\([^)]*\)/g, '').replace(/\s+/g, ' ').trim();
}

function maxLength(type: string): number | null {
  const m = /^(character varying|character|varchar|char|bit varying|bit)\((\d+)\)$/.exec(type);
  return m ? Number(m[2]) : null;
}

let nulls: Record<Kind, Node> | undefined;

/** `NULL::text`, `NULL::integer`, `NULL::timestamptz`: typed so that a column of NULLs (or an empty list) still has its type. */
function typedNull(kind: Kind): Node {
  if (!nulls) {
    const select = parseTemplate('SELECT NULL::text, NULL::integer, NULL::timestamptz', 'typed NULL');
    const [text, int, timestamptz] = (select.targetList as Array<{ ResTarget: ResTarget }>).map((t) => t.ResTarget.val as Node);
    nulls = { text, int, timestamptz };
  }
  return cloneTree(nulls[kind]);
}

function value(v: Value, kind: Kind): Node {
  if (v === null) return typedNull(kind);
  if (kind === 'timestamptz') {
    // The typed NULL's cast, around the value's text: '…'::timestamptz.
    const cast = typedNull(kind) as { TypeCast: { arg: Node } };
    cast.TypeCast.arg = stringConst(String(v));
    return cast as unknown as Node;
  }
  return typeof v === 'number' ? intConst(v) : stringConst(v);
}

function build(columns: Array<[string, Kind]>, rows: Value[][]): SelectStmt {
  if (rows.length === 0) {
    // No visible tables: an empty result that still has the columns and their types.
    return {
      targetList: columns.map(([, kind]) => ({ ResTarget: { val: typedNull(kind) } })),
      whereClause: { A_Const: { boolval: {} } },
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    };
  }
  return {
    // Every NULL is typed; string constants resolve to text in VALUES.
    valuesLists: rows.map((row) => ({ List: { items: row.map((v, i) => value(v, columns[i][1])) } })),
    limitOption: 'LIMIT_OPTION_DEFAULT',
    op: 'SETOP_NONE',
  };
}

/**
 * pg_catalog.pg_type for drivers that read type metadata at connect (postgres.js, JDBC):
 * every type except the row types of relations and their arrays, which would name every
 * table, hidden ones included. Fenced with OFFSET 0 so the agent's own conditions cannot
 * run on the rows the filter removes.
 */
const TYPES_VIEW = `SELECT * FROM (SELECT t.* FROM pg_catalog.pg_type t WHERE t.typrelid = 0
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typrelid <> 0) OFFSET 0) AS pg_type`;
let typesView: Node | undefined;

export function typesTable(rv: RangeVar): Node {
  typesView ??= parseTemplate(TYPES_VIEW, 'pg_type view').fromClause?.[0] as Node;
  const view = cloneTree(typesView) as { RangeSubselect: { alias: { aliasname: string } } };
  view.RangeSubselect.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? 'pg_type' };
  return view as unknown as Node;
}

/** One of the principal's own approvals, as ormai.approvals shows it. */
export interface AgentApproval {
  id: string;
  state: string;
  operation: string;
  model: string;
  rule: string;
  reason?: string;
  createdAt: string;
  expiresAt: string;
  received: number;
  required: number;
  rowsAffected?: number;
  error?: string;
}

const APPROVAL_COLUMNS: Array<[string, Kind]> = [
  ['approval_id', 'text'],
  ['state', 'text'],
  ['operation', 'text'],
  ['model', 'text'],
  ['rule', 'text'],
  ['reason', 'text'],
  ['created_at', 'timestamptz'],
  ['expires_at', 'timestamptz'],
  ['approvals_received', 'int'],
  ['approvals_required', 'int'],
  ['rows_affected', 'int'],
  ['error', 'text'],
];

/** `ormai.approvals`: the principal's own approvals, as the session read them from the store for this statement. */
export function approvalsTable(rv: RangeVar, approvals: readonly AgentApproval[]): Node {
  const rows: Value[][] = approvals.map((a) => [
    a.id, a.state, a.operation, a.model, a.rule, a.reason ?? null, a.createdAt, a.expiresAt, a.received, a.required, a.rowsAffected ?? null, a.error ?? null,
  ]);
  return {
    RangeSubselect: {
      subquery: { SelectStmt: build(APPROVAL_COLUMNS, rows) },
      alias: { aliasname: rv.alias?.aliasname ?? rv.relname, colnames: APPROVAL_COLUMNS.map(([c]) => ({ String: { sval: c } })) },
    },
  };
}
