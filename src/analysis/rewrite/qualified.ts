// schema.table.column references: the policy view that replaces the table answers to the table's name only, so the schema is dropped.
import type { ColumnRef, Node, RangeVar } from '@pgsql/types';
import type { ReadScope } from '../../policy/scope';
import { walk } from './nodes';
import { catalogViewColumns } from './virtual';

/** What a relation reference resolves to, as one key; undefined for what the rewrite does not replace by name. */
function relationKey(scope: ReadScope, schema: string | undefined, name: string): string | undefined {
  const resolution = scope.resolve(schema, name);
  switch (resolution.kind) {
    case 'table':
      return `${resolution.table.schema}.${resolution.table.name}`;
    case 'virtual':
      return `information_schema.${resolution.name}`;
    case 'catalog':
      return catalogViewColumns(scope, resolution.schema, resolution.name) ? `${resolution.schema}.${resolution.name}` : undefined;
    case 'unknown':
      return undefined;
  }
}

function isRangeVar(node: Record<string, unknown>): boolean {
  return typeof node.relname === 'string' && 'relpersistence' in node;
}

/**
 * PostgreSQL resolves `s.t.c` to an unaliased reference to the relation s.t in FROM (an alias
 * hides the table's name: scanNameSpaceForRelid). The rewrite puts a derived table named t in
 * that place, which `s.t` no longer matches; `t.c` names it exactly. Only references to a
 * relation the statement reads unaliased are changed: any other stays as written, and
 * PostgreSQL answers it as it would have (a missing FROM-clause entry).
 */
export function dropSchemaQualifiers(tree: Node, scope: ReadScope): void {
  const unaliased = new Set<string>();
  const refs: ColumnRef[] = [];
  walk([tree], (node) => {
    if (isRangeVar(node)) {
      const rv = node as RangeVar;
      const key = !rv.alias && rv.catalogname === undefined ? relationKey(scope, rv.schemaname, rv.relname ?? '') : undefined;
      if (key) unaliased.add(key);
    }
    const ref = (node as { ColumnRef?: ColumnRef }).ColumnRef;
    if (ref?.fields?.length === 3 && ref.fields.slice(0, 2).every((f) => 'String' in f)) refs.push(ref);
    return false;
  });
  for (const ref of refs) {
    const [schema, table] = ref.fields!.slice(0, 2).map((f) => (f as { String: { sval?: string } }).String.sval ?? '');
    const key = relationKey(scope, schema, table);
    if (key && unaliased.has(key)) ref.fields = ref.fields!.slice(1);
  }
}
