// Reads a planner estimate of how many rows a statement scans, from EXPLAIN (FORMAT JSON, VERBOSE) output.
import type { CatalogSnapshot } from '../policy/scope';

interface PlanNode {
  'Node Type': string;
  'Plan Rows'?: number;
  'Relation Name'?: string;
  Schema?: string;
  'Parent Relationship'?: string;
  Plans?: PlanNode[];
}

const SCAN_NODES = new Set(['Seq Scan', 'Index Scan', 'Index Only Scan', 'Bitmap Heap Scan', 'Tid Scan', 'Tid Range Scan', 'Sample Scan', 'Foreign Scan']);

/**
 * The system catalogs the proxy's catalog views read: no tenant's data, and as large as the
 * schema, not the business. An ORM's introspection (pg_type joined to pg_class, say) would
 * otherwise count as a scan of a hundred thousand rows; statement_timeout still bounds it.
 */
const CATALOG_SCHEMAS = new Set(['pg_catalog', 'information_schema']);

/** Nodes that consume all of their input before producing a row: a LIMIT above them does not shorten the scans below. */
const BLOCKING_NODES = new Set(['Sort', 'Incremental Sort', 'Aggregate', 'Hash', 'SetOp', 'WindowAgg', 'Materialize', 'Gather Merge']);

/**
 * Rows the statement is expected to read from tables (the system catalogs do not count):
 * - a sequential scan reads the whole table: the table's size (pg_class.reltuples, or the
 *   node's own estimate when larger or when the table was never analysed), except for a
 *   tenant-scoped table (`tenantShares`, schema.name → the planner's estimate of the tenant's
 *   rows): its size counts every tenant's rows, so the tenant's own share counts instead (the
 *   statement_timeout bounds the rest of the scan);
 * - other scans read their estimated rows;
 * - the inner side of a nested loop runs once per outer row;
 * - a LIMIT shortens the scans below it in proportion, unless a blocking node (sort,
 *   aggregate, hash…) sits in between and reads everything first.
 */
export function estimateScanRows(explainJson: unknown, catalog: CatalogSnapshot, tenantShares: ReadonlyMap<string, number> = new Map()): number {
  return Math.round(walk(rootPlan(explainJson), 1, 1, catalog, tenantShares));
}

function rootPlan(explainJson: unknown): PlanNode {
  const root = (Array.isArray(explainJson) ? explainJson[0] : explainJson) as { Plan?: PlanNode } | undefined;
  if (!root?.Plan) throw new Error('EXPLAIN output has no plan');
  return root.Plan;
}

/** schema.name of the tables the plan reads with a sequential scan. */
export function sequentialScans(explainJson: unknown, catalog: CatalogSnapshot): Set<string> {
  const out = new Set<string>();
  const stack = [rootPlan(explainJson)];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name']) out.add(`${node.Schema ?? catalog.searchPath[0] ?? 'public'}.${node['Relation Name']}`);
    stack.push(...(node.Plans ?? []));
  }
  return out;
}

function walk(node: PlanNode, loops: number, fraction: number, catalog: CatalogSnapshot, tenantShares: ReadonlyMap<string, number>): number {
  const type = node['Node Type'];
  let total = 0;
  if (SCAN_NODES.has(type) && !CATALOG_SCHEMAS.has(node.Schema ?? '')) {
    let rows = node['Plan Rows'] ?? 0;
    if (type === 'Seq Scan' && node['Relation Name']) {
      const name = `${node.Schema ?? catalog.searchPath[0] ?? 'public'}.${node['Relation Name']}`;
      const share = tenantShares.get(name);
      const size = share ?? catalog.relations.get(name)?.rowEstimate ?? 0;
      if (size > rows) rows = size;
    }
    total += rows * loops * fraction;
  }
  const children = node.Plans ?? [];
  let childFraction = BLOCKING_NODES.has(type) ? 1 : fraction;
  if (type === 'Limit' && children[0]) {
    const wanted = node['Plan Rows'] ?? 0;
    const available = children[0]['Plan Rows'] ?? 0;
    if (available > 0) childFraction *= Math.min(1, wanted / available);
  }
  const nested = type === 'Nested Loop';
  const outerRows = nested ? Math.max(1, children.find((c) => c['Parent Relationship'] === 'Outer')?.['Plan Rows'] ?? 1) : 1;
  for (const child of children) {
    const inner = nested && child['Parent Relationship'] === 'Inner';
    total += walk(child, inner ? loops * outerRows * childFraction : loops, inner ? 1 : childFraction, catalog, tenantShares);
  }
  return total;
}
