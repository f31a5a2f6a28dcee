// The policy file format (policy.yaml): strict zod schema; keys follow the product brief's builder calls.
import { z } from 'zod';

export const profileNames = ['prod', 'internal', 'dev'] as const;
export type ProfileName = (typeof profileNames)[number];

export const maskStrategies = ['email', 'phone', 'partial', 'last4', 'hash', 'null'] as const;
export type MaskStrategy = (typeof maskStrategies)[number];

/** `table.column`, optionally schema-qualified; globs allowed in either part. */
const fieldRef = z.string().regex(/^[^.\s]+(\.[^.\s]+){1,2}$/, 'expected table.column (or schema.table.column)');

const model = z.strictObject({
  table: z.string().min(1),
  /** The model's name as the agent's tooling knows it (defaults to the table name). */
  name: z.string().min(1).optional(),
  /** An extra SQL predicate over the table's own columns, e.g. "deleted_at IS NULL". */
  row_filter: z.string().min(1).optional(),
  /**
   * Let statements read the table's system columns (xmin, xmax, cmin, cmax, ctid, tableoid),
   * e.g. xmin as an optimistic-locking token. Off by default: they expose transaction ids
   * (the pace of every tenant's writes), physical row positions and the table's OID.
   * Default false.
   */
  system_columns: z.boolean().optional(),
});

const maskRule = z.strictObject({
  field: fieldRef,
  strategy: z.enum(maskStrategies).optional(),
});

export const tenantTypes = ['integer', 'bigint', 'text', 'uuid'] as const;
export type TenantType = (typeof tenantTypes)[number];

export const writeOperations = ['create', 'update', 'delete'] as const;
export type WriteOperation = (typeof writeOperations)[number];

const writeGrant = z.strictObject({
  models: z.array(z.string().min(1)).min(1),
  operations: z.array(z.enum(writeOperations)).min(1).default(['create', 'update', 'delete']),
  require_reason: z.boolean().optional(),
  /** Per model: the only columns the agent may assign. Absent = every visible column except the tenant column. */
  writable_fields: z.record(z.string(), z.array(z.string().min(1))).optional(),
  /** Per model: a write touching more rows is refused (or held for approval). */
  max_affected_rows: z.number().int().positive().optional(),
});

const condition = z.strictObject({
  field: z.string().min(1).optional(),
  in: z.array(z.union([z.string(), z.number(), z.boolean()])).optional(),
  equals: z.union([z.string(), z.number(), z.boolean()]).optional(),
  affected_rows_gt: z.number().int().nonnegative().optional(),
});

const approvalRule = z.strictObject({
  operation: z.enum(writeOperations),
  model: z.string().min(1),
  when: condition.optional(),
  approvers: z.number().int().positive().default(1),
  expires_in_s: z.number().int().positive().default(3600),
});

export const domainParamTypes = ['integer', 'number', 'text', 'boolean', 'date', 'timestamp', 'uuid'] as const;
export type DomainParamType = (typeof domainParamTypes)[number];

/** `namespace.name`, lower case (the tool layer's canonical form); docs/domain-tools.md. */
export const DOMAIN_TOOL_NAME = /^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/;
/** A named parameter, written `:name` in the tool's SQL. */
export const DOMAIN_PARAM_NAME = /^[a-z_][a-z0-9_]*$/;

const domainParam = z.strictObject({
  type: z.enum(domainParamTypes),
  description: z.string().min(1),
  /** An optional parameter the agent leaves out is bound as NULL. */
  required: z.boolean().default(true),
});

/** A named, parameterised SQL statement offered to the agent as a tool of its own (src/policy/domain-tools.ts). */
const domainTool = z.strictObject({
  name: z.string().regex(DOMAIN_TOOL_NAME, 'expected namespace.name in lower case, e.g. analytics.weekly_revenue'),
  description: z.string().min(1),
  sql: z.string().min(1),
  params: z.record(z.string().regex(DOMAIN_PARAM_NAME, 'expected a lower-case parameter name (letters, digits, _)'), domainParam).default({}),
});

export const policySchema = z.strictObject({
  name: z.string().min(1),
  profile: z.enum(profileNames).default('prod'),
  /** Only principals holding this role use this policy. */
  require_principal_role: z.string().min(1).optional(),
  /** Registered tables; anything else is invisible. A string is shorthand for { table }. */
  models: z.array(z.union([z.string().min(1), model])).min(1),
  tenant_scope: z
    .strictObject({
      column: z.string().min(1),
      type: z.enum(tenantTypes).default('integer'),
    })
    .optional(),
  /** Column globs (case-insensitive) that do not exist for the agent; secret patterns are always added. */
  deny_fields: z.array(z.string().min(1)).default([]),
  /** `table.column` or { field, strategy }; the strategy defaults from the column name. */
  mask_fields: z.array(z.union([fieldRef, maskRule])).default([]),
  /** File holding the key for the `hash` mask strategy (the database never sees it). */
  mask_hash_key_file: z.string().optional(),
  enable_writes: z.array(writeGrant).default([]),
  require_approval: z.array(approvalRule).default([]),
  max_writes_per_minute: z.number().int().positive().optional(),
  max_rows: z.number().int().positive().optional(),
  max_scan_rows: z.number().int().positive().optional(),
  statement_timeout_ms: z.number().int().positive().optional(),
  /**
   * idle_in_transaction_session_timeout of the upstream session; the agent may lower it, never
   * raise or disable it. Unset, the database's own setting stands and the agent may not change it.
   */
  idle_in_transaction_timeout_ms: z.number().int().positive().max(2147483647).optional(),
  max_join_depth: z.number().int().positive().optional(),
  queries_per_minute_per_tenant: z.number().int().positive().optional(),
  /** Extra functions the agent may call, beyond the curated safe built-ins. */
  allow_functions: z.array(z.string().min(1)).default([]),
  /** Domain tools: named SQL statements with typed parameters, run under this policy like any statement. */
  tools: z.array(domainTool).default([]),
});

export type RawPolicy = z.infer<typeof policySchema>;

/** Defaults a profile gives where the policy file says nothing. */
export const profileDefaults: Record<ProfileName, { max_rows: number; statement_timeout_ms: number; require_reason: boolean; max_join_depth: number }> = {
  prod: { max_rows: 100, statement_timeout_ms: 2000, require_reason: true, max_join_depth: 3 },
  internal: { max_rows: 1000, statement_timeout_ms: 10000, require_reason: true, max_join_depth: 5 },
  dev: { max_rows: 10000, statement_timeout_ms: 30000, require_reason: false, max_join_depth: 8 },
};

/** Denied in every policy, whatever the file says. */
export const ALWAYS_DENIED = ['*password*', '*secret*', '*token*', '*api_key*', '*apikey*', '*private_key*'];
