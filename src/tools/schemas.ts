// Tool specs for a principal's policy: each tool's name, description and JSON Schema (from the zod argument schemas), in the shapes agent SDKs take.
//
// Specialised to the policy: the model argument is an enum of the policy's models (a write
// tool's, of the models that write is enabled for), a write tool that no model enables is
// left out, and descriptions say what the policy requires (reasons, approvals, row caps). The
// policy's domain tools (tools: in the policy file) follow the proxy's own.
// The proxy still checks every call itself; the specs only tell the agent what will work.
import { z } from 'zod';
import type { PolicySnapshot, WriteRule } from '../policy/load';
import { argumentSchemas, TOOL_NAMES, type ToolName, type WriteToolName } from './arguments';
import { approvalsFor } from './describe';
import { domainOffers } from './domain';
import { wireToolName } from './names';

export { argumentSchemas, parseToolArguments, TOOL_NAMES, SQL_TOOLS, OPERATORS, AGGREGATE_FUNCTIONS, type ToolArguments, type ToolName } from './arguments';
export { canonicalToolName, wireToolName } from './names';

/** A JSON Schema object (draft 2020-12) for a tool's arguments. */
export type JsonSchema = Record<string, unknown> & { type: 'object'; properties: Record<string, unknown>; required?: string[] };

export interface ToolSpec {
  /** Canonical name (db.query, or a domain tool's analytics.weekly_revenue); toolSpecsAs maps it for APIs that refuse dots. */
  name: string;
  description: string;
  input_schema: JsonSchema;
  /** A domain tool that changes data (MCP annotates it as destructive). */
  writes?: true;
}

export type ToolSpecFormat = 'anthropic' | 'openai' | 'mcp' | 'json-schema';

const WRITE_OPS: Record<WriteToolName, 'insert' | 'update' | 'delete'> = { 'db.create': 'insert', 'db.update': 'update', 'db.delete': 'delete' };
const OPERATION: Record<WriteToolName, 'create' | 'update' | 'delete'> = { 'db.create': 'create', 'db.update': 'update', 'db.delete': 'delete' };

/** The tools this policy's principal can use, described for it. */
export function toolSpecs(policy: PolicySnapshot): ToolSpec[] {
  const models = [...new Set(policy.models.map((m) => m.name))];
  const writable = {} as Record<WriteToolName, Array<{ name: string; table: string; rule: WriteRule }>>;
  for (const tool of Object.keys(WRITE_OPS) as WriteToolName[]) {
    writable[tool] = policy.models.flatMap((m) => {
      const rule = policy.writeRule({ ...(m.schema ? { schema: m.schema } : {}), name: m.table, op: WRITE_OPS[tool] });
      return rule ? [{ name: m.name, table: m.table, rule }] : [];
    });
  }
  const enums: Partial<Record<ToolName, readonly string[]>> = {};
  for (const tool of ['db.describe_schema', 'db.query', 'db.get', 'db.aggregate'] as const) enums[tool] = models;
  for (const tool of Object.keys(writable) as WriteToolName[]) enums[tool] = [...new Set(writable[tool].map((m) => m.name))];
  const schemas = argumentSchemas(enums);
  const approvals = policy.raw.require_approval.length > 0 && Object.values(writable).some((w) => w.length > 0);

  const specs: ToolSpec[] = [];
  for (const name of TOOL_NAMES) {
    if (name in writable && writable[name as WriteToolName].length === 0) continue;
    if (name === 'approvals.status' && !approvals) continue;
    const input = jsonSchema(schemas[name]);
    if (name in writable) {
      const grants = writable[name as WriteToolName];
      if (grants.every((g) => g.rule.requireReason)) input.required = [...(input.required ?? []), 'reason'];
    }
    specs.push({ name, description: describe(name, policy, models, writable), input_schema: input });
  }
  // The policy's domain tools after the proxy's own (domain.ts).
  for (const offer of domainOffers(policy)) {
    const input = jsonSchema(offer.schema);
    if (offer.reasonRequired) input.required = [...(input.required ?? []), 'reason'];
    specs.push({ name: offer.name, description: offer.description, input_schema: input, ...(offer.writes ? { writes: true as const } : {}) });
  }
  return specs;
}

function jsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest as JsonSchema;
}

/** The specs in the shape an SDK takes: Anthropic `tools`, OpenAI Chat Completions `tools`, MCP `tools/list`, or one JSON Schema per tool. */
export function toolSpecsAs(specs: readonly ToolSpec[], format: 'anthropic'): Array<{ name: string; description: string; input_schema: JsonSchema }>;
export function toolSpecsAs(specs: readonly ToolSpec[], format: 'openai'): Array<{ type: 'function'; function: { name: string; description: string; parameters: JsonSchema } }>;
export function toolSpecsAs(specs: readonly ToolSpec[], format: 'mcp'): Array<{ name: string; title: string; description: string; inputSchema: JsonSchema }>;
export function toolSpecsAs(specs: readonly ToolSpec[], format: 'json-schema'): Record<string, Record<string, unknown>>;
export function toolSpecsAs(specs: readonly ToolSpec[], format: ToolSpecFormat): unknown;
export function toolSpecsAs(specs: readonly ToolSpec[], format: ToolSpecFormat): unknown {
  switch (format) {
    case 'anthropic':
      return specs.map((s) => ({ name: wireToolName(s.name), description: s.description, input_schema: s.input_schema }));
    case 'openai':
      return specs.map((s) => ({ type: 'function' as const, function: { name: wireToolName(s.name), description: s.description, parameters: s.input_schema } }));
    case 'mcp':
      return specs.map((s) => ({ name: wireToolName(s.name), title: s.name, description: s.description, inputSchema: s.input_schema }));
    case 'json-schema':
      return Object.fromEntries(
        specs.map((s) => [s.name, { $schema: 'https://json-schema.org/draft/2020-12/schema', title: s.name, description: s.description, ...s.input_schema }]),
      );
    default:
      throw new Error(`unknown tool spec format ${String(format)}`);
  }
}

// ---- descriptions ----

type Writable = Record<WriteToolName, Array<{ name: string; table: string; rule: WriteRule }>>;

function describe(tool: ToolName, policy: PolicySnapshot, models: string[], writable: Writable): string {
  const tenant = policy.raw.tenant_scope?.column;
  const scoped = tenant ? ` Every call sees only your tenant's rows; leave ${tenant} out of filters and data (the proxy sets it from your credentials and ignores any value you give).` : '';
  const reads = `Hidden fields do not exist for you and masked fields (e.g. emails) come back masked. At most ${policy.maxRows} rows are returned; a statement stops after ${policy.statementTimeoutMs} ms.`;
  const list = `Models: ${models.join(', ')}. db.describe_schema lists their fields.`;
  switch (tool) {
    case 'db.describe_schema':
      return `Describe the data you may use: each model (table) with its visible fields and types, masked fields and their mask, the primary key, which writes are enabled and which fields they may set, whether a reason is required, and the approval rules. Call it first. Models: ${models.join(', ')}.`;
    case 'db.query':
      return `Read rows of one model. Filter with where ({"field": value} for equality, null for IS NULL, or {"field": {"gte": 10}} with eq, ne, gt, gte, lt, lte, in, not_in, like, ilike, is_null; all conditions ANDed), pick fields with select, sort with order_by ("-field" descending), page with limit and offset. ${reads}${scoped} ${list}`;
    case 'db.get':
      return `Read one row of a model by its primary key (id: 42, or {"field": value} for a composite key). Answers row_not_found when no row of yours has that key. ${reads}${scoped} ${list}`;
    case 'db.aggregate':
      return `Count, sum, average, minimum or maximum over the rows of one model matching where, optionally per group (group_by). Result columns: the group_by fields, then one per aggregate named fn_field ("count" for a row count, "sum_total_cents" for the sum of total_cents). ${reads}${scoped} ${list}`;
    case 'db.create':
    case 'db.update':
    case 'db.delete':
      return describeWrite(tool, policy, writable[tool], scoped);
    case 'db.sql':
      return `Run one read-only SQL statement (SELECT, PostgreSQL dialect) under the same policy, with $1, $2 … bound from params. Use it for joins and expressions the other tools cannot express. Only the models' tables exist, with their visible fields; writes, DDL and session commands are refused. ${reads}${scoped} Tables: ${policy.models.map((m) => (m.schema ? `${m.schema}.${m.table}` : m.table)).join(', ')}.`;
    case 'approvals.status':
      return 'The state of writes held for human approval: pending, approved (and then executed or failed), denied or expired. Give the approval_id a held write returned, or nothing for your recent approvals. Do not resend a held write: once approved, the proxy runs it.';
  }
}

function describeWrite(tool: WriteToolName, policy: PolicySnapshot, grants: Writable[WriteToolName], scoped: string): string {
  const what = {
    'db.create': 'Insert one row into a model (data: field → value) and return it as stored.',
    'db.update': 'Change fields (data) of the rows of a model chosen by id (primary key) or by a where filter (never every row) and return them as changed.',
    'db.delete': 'Delete the rows of a model chosen by id (primary key) or by a where filter (never every row) and return them as they were.',
  }[tool];
  const names = grants.map((g) => g.name);
  const needReason = grants.filter((g) => g.rule.requireReason).map((g) => g.name);
  const reason =
    needReason.length === 0
      ? 'A reason is optional but recorded in the audit trail.'
      : needReason.length === grants.length
        ? 'A reason (one sentence: why, for whom) is required.'
        : `A reason (one sentence: why, for whom) is required for ${needReason.join(', ')}.`;
  const fields = tool === 'db.delete' ? [] : grants.filter((g) => g.rule.writableFields).map((g) => `${g.name}: ${[...g.rule.writableFields!].join(', ')}`);
  const writableText = fields.length > 0 ? ` Only these fields may be set: ${fields.join('; ')}.` : '';
  const caps = tool === 'db.create' ? [] : grants.filter((g) => g.rule.maxAffectedRows !== undefined).map((g) => `${g.name} ${g.rule.maxAffectedRows}`);
  const capText = caps.length > 0 ? ` At most this many rows per call: ${caps.join(', ')}.` : '';
  const rate = policy.raw.max_writes_per_minute !== undefined ? ` At most ${policy.raw.max_writes_per_minute} writes per minute.` : '';
  const tables = [...new Set(grants.map((g) => g.table))];
  const rules = tables.flatMap((t) => approvalsFor(policy, OPERATION[tool], t)).map((a) => `${a.rule} (${a.approvers} approver${a.approvers === 1 ? '' : 's'})`);
  const approval = rules.length > 0 ? ` Held for human approval: ${rules.join('; ')}; the call then answers pending_approval with an approval_id (check it with approvals.status, do not resend).` : '';
  return `${what} ${reason} dry_run: true previews the change without making it.${writableText}${capText}${rate}${approval}${scoped} Enabled for: ${names.join(', ')}.`;
}
