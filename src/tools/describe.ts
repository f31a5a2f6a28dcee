// db.describe_schema: the data a principal may use, answered from its compiled scope (visible fields only) and its policy's write and approval rules.
//
// Fields come from ScopedTable.columns, the policy's own visibility (denied columns are not
// there); types are those the agent sees (visibleType: a mask turns a non-text column into
// text). Writable fields follow the rules the pipeline applies (write-target.ts checkWritable):
// writable_fields when the grant lists them, else every visible column but the tenant column
// and the ones the database fills in.
import { visibleType } from '../analysis/rewrite/derived';
import type { MaskStrategy } from '../policy/schema';
import type { PolicySnapshot, WriteRule } from '../policy/load';
import { compileScope, type CatalogSnapshot, type ReadScope, type ScopedTable } from '../policy/scope';
import { resolveModel } from './clauses';

export interface FieldDescription {
  name: string;
  /** The type as the agent reads it, e.g. "integer", "character varying(120)". */
  type: string;
  nullable: boolean;
  /** The field is only ever returned masked, with this strategy. */
  masked?: MaskStrategy;
  /** Filled in by the database (serial, identity, generated): leave it out of data. */
  generated?: true;
  primary_key?: true;
  /** The tenant column: set by the proxy, never by you. */
  tenant?: true;
}

export interface ApprovalDescription {
  /** e.g. "update orders when more than 50 rows change". */
  rule: string;
  approvers: number;
  expires_in_s: number;
}

export interface WriteDescription {
  reason_required: boolean;
  /** Fields the write may set (create and update). */
  writable_fields?: string[];
  max_affected_rows?: number;
  approvals: ApprovalDescription[];
}

export interface ModelDescription {
  name: string;
  /** schema.table */
  table: string;
  primary_key: string[] | null;
  tenant_scoped: boolean;
  row_filter: boolean;
  fields: FieldDescription[];
  /** read always; create, update, delete as the policy enables them. */
  operations: Array<'read' | 'create' | 'update' | 'delete'>;
  writes: Partial<Record<'create' | 'update' | 'delete', WriteDescription>>;
}

export interface SchemaDescription {
  policy: string;
  /** The tenant column: every read and write is scoped to your tenant through it. */
  tenant_column?: string;
  max_rows: number;
  statement_timeout_ms: number;
  max_writes_per_minute?: number;
  models: ModelDescription[];
  /** The policy's domain tools (docs/domain-tools.md): call them by name with their parameters. */
  domain_tools?: Array<{ name: string; description: string; params: Record<string, { type: string; description?: string; required: boolean }> }>;
}

const OPS = [
  ['create', 'insert'],
  ['update', 'update'],
  ['delete', 'delete'],
] as const;

/**
 * The principal's view of the schema, from its compiled scope (PolicyView.scope), or from a
 * policy and a catalog (compiled here). `model` keeps one model (model_not_allowed if unknown).
 */
export function describeSchema(scope: ReadScope, options?: { model?: string }): SchemaDescription;
export function describeSchema(policy: PolicySnapshot, catalog: CatalogSnapshot, options?: { model?: string }): SchemaDescription;
export function describeSchema(first: ReadScope | PolicySnapshot, second?: CatalogSnapshot | { model?: string }, third?: { model?: string }): SchemaDescription {
  const isScope = 'tables' in first && 'resolve' in first;
  const scope = isScope ? (first as ReadScope) : compileScope(first as PolicySnapshot, second as CatalogSnapshot);
  const options = (isScope ? (second as { model?: string } | undefined) : third) ?? {};
  const policy = scope.policy;
  const tables = options.model !== undefined ? [resolveModel(scope, options.model)] : [...scope.tables.values()];
  return {
    policy: policy.name,
    ...(policy.raw.tenant_scope ? { tenant_column: policy.raw.tenant_scope.column } : {}),
    max_rows: policy.maxRows,
    statement_timeout_ms: policy.statementTimeoutMs,
    ...(policy.raw.max_writes_per_minute !== undefined ? { max_writes_per_minute: policy.raw.max_writes_per_minute } : {}),
    models: tables.map((t) => describeModel(policy, t)),
    ...(options.model === undefined && policy.raw.tools.length > 0
      ? {
          domain_tools: policy.raw.tools.map((t) => ({
            name: t.name,
            description: t.description,
            params: Object.fromEntries(Object.entries(t.params ?? {}).map(([name, p]) => [name, { type: p.type, ...(p.description ? { description: p.description } : {}), required: p.required !== false }])),
          })),
        }
      : {}),
  };
}

function describeModel(policy: PolicySnapshot, table: ScopedTable): ModelDescription {
  const key = new Set(table.primaryKey ?? []);
  const fields: FieldDescription[] = table.columns.map((c) => ({
    name: c.name,
    type: visibleType(c),
    nullable: !c.notNull,
    ...(c.mask ? { masked: c.mask } : {}),
    ...(c.generated ? { generated: true as const } : {}),
    ...(key.has(c.name) ? { primary_key: true as const } : {}),
    ...(c.name === table.tenantColumn ? { tenant: true as const } : {}),
  }));
  const writes: ModelDescription['writes'] = {};
  for (const [operation, op] of OPS) {
    const rule = policy.writeRule({ schema: table.schema, name: table.name, op });
    if (rule) writes[operation] = describeWrite(policy, table, operation, rule);
  }
  return {
    name: table.model,
    table: `${table.schema}.${table.name}`,
    primary_key: table.primaryKey ?? null,
    tenant_scoped: table.tenantColumn !== undefined,
    row_filter: table.rowFilter !== undefined,
    fields,
    operations: ['read', ...OPS.map(([operation]) => operation).filter((o) => writes[o] !== undefined)],
    writes,
  };
}

function describeWrite(policy: PolicySnapshot, table: ScopedTable, operation: 'create' | 'update' | 'delete', rule: WriteRule): WriteDescription {
  const writable =
    operation === 'delete'
      ? undefined
      : table.columns
          .filter((c) => (rule.writableFields ? rule.writableFields.has(c.name) : !c.generated))
          .filter((c) => c.name !== table.tenantColumn)
          .map((c) => c.name);
  const approvals = approvalsFor(policy, operation, table.name);
  return {
    reason_required: rule.requireReason,
    ...(writable ? { writable_fields: writable } : {}),
    ...(rule.maxAffectedRows !== undefined ? { max_affected_rows: rule.maxAffectedRows } : {}),
    approvals,
  };
}

/** The require_approval rules for an operation on a table, matched as the pipeline matches them (write-limits.ts approvalNeed). */
export function approvalsFor(policy: PolicySnapshot, operation: 'create' | 'update' | 'delete', table: string): ApprovalDescription[] {
  return policy.raw.require_approval
    .filter((r) => r.operation === operation && r.model.toLowerCase().split('.').pop() === table)
    .map((r) => ({ rule: ruleText(r), approvers: r.approvers, expires_in_s: r.expires_in_s }));
}

function ruleText(rule: PolicySnapshot['raw']['require_approval'][number]): string {
  const w = rule.when;
  const parts = [
    w?.field !== undefined && w.equals !== undefined ? `${w.field} = ${JSON.stringify(w.equals)}` : '',
    w?.field !== undefined && w.in !== undefined ? `${w.field} in ${JSON.stringify(w.in)}` : '',
    w?.affected_rows_gt !== undefined ? `more than ${w.affected_rows_gt} rows change` : '',
  ].filter(Boolean);
  return `${rule.operation} ${rule.model}${parts.length ? ` when ${parts.join(' and ')}` : ''}`;
}
