// The tools' argument schemas (strict zod objects, described for an LLM) and their validation into tool_arguments_invalid.
//
// One builder per tool. Validation uses the generic form (any model name: the compiler resolves
// it against the principal's scope); the tool specs (schemas.ts) build the same schemas with the
// policy's model names as an enum, so what an agent is shown and what is checked cannot drift.
import { z } from 'zod';
import { ProxyError } from '../errors/catalogue';

/** Tools compiled to one SQL statement (compile.ts). */
export const SQL_TOOLS = ['db.query', 'db.get', 'db.aggregate', 'db.create', 'db.update', 'db.delete', 'db.sql'] as const;
/** Every tool, in the order specs list them. */
export const TOOL_NAMES = ['db.describe_schema', 'db.query', 'db.get', 'db.aggregate', 'db.create', 'db.update', 'db.delete', 'db.sql', 'approvals.status'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];
export type SqlToolName = (typeof SQL_TOOLS)[number];
export type WriteToolName = 'db.create' | 'db.update' | 'db.delete';

export const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'not_in', 'like', 'ilike', 'is_null'] as const;
export type Operator = (typeof OPERATORS)[number];
export const AGGREGATE_FUNCTIONS = ['count', 'sum', 'avg', 'min', 'max'] as const;

/** Bounds that keep one call to one reasonable statement. */
export const LIMITS = { whereFields: 64, listItems: 1000, selectFields: 200, orderBy: 16, groupBy: 16, aggregates: 32, dataFields: 200, reason: 2000, sql: 100_000, sqlParams: 1000, jsonDepth: 32, params: 5000 };

const noZeroByte = (s: string) => !s.includes('\0');
/** Text values: PostgreSQL's text types cannot hold a zero byte. */
const text = z.string().refine(noZeroByte, { error: 'text cannot contain a zero byte (\\u0000)' });
const scalar = z.union([text, z.number(), z.boolean()], { error: 'expected a string, number or boolean' });
const scalarOrNull = z.union([text, z.number(), z.boolean(), z.null()], { error: 'expected a string, number, boolean or null' });
/** A message for the wrong type only; other issues (too long, …) keep zod's own. */
const typeError = (text: string) => (issue: { code?: string }) => (issue.code === 'invalid_type' ? text : undefined);
/** A field name where the surrounding argument already says what it is (record keys, list items): no description repeated in every spec. */
const fieldKey = z.string({ error: typeError('expected a field name (string)') }).min(1).max(128);
const fieldName = fieldKey.describe('A field (column) of the model, as db.describe_schema lists it.');

const maxKeys = (n: number) => (o: Record<string, unknown>) => Object.keys(o).length <= n;

const operatorObject = z
  .strictObject({
    eq: scalarOrNull.optional().describe('Equal to (null: IS NULL).'),
    ne: scalarOrNull.optional().describe('Not equal to; rows where the field is NULL do not match, as in SQL (null: IS NOT NULL).'),
    gt: scalar.optional().describe('Greater than.'),
    gte: scalar.optional().describe('Greater than or equal to.'),
    lt: scalar.optional().describe('Less than.'),
    lte: scalar.optional().describe('Less than or equal to.'),
    in: z.array(scalar).min(1).max(LIMITS.listItems).optional().describe('One of these values.'),
    not_in: z.array(scalar).min(1).max(LIMITS.listItems).optional().describe('None of these values.'),
    like: text.optional().describe('SQL LIKE pattern (% any run, _ one character), case-sensitive.'),
    ilike: text.optional().describe('Like `like`, case-insensitive.'),
    is_null: z.boolean().optional().describe('true: the field is NULL; false: it is not.'),
  })
  // `when`: only for an object that is otherwise valid (an unknown operator is reported, not this too).
  .refine((o) => Object.keys(o).length > 0, { error: 'an operator object needs at least one operator', when: (p) => p.issues.length === 0 })
  .meta({ minProperties: 1 });

const condition = z.union([scalarOrNull, operatorObject], {
  error: 'expected a value (string, number, boolean or null) or an operator object such as {"gt": 5} or {"in": [1, 2]}; conditions are always ANDed (for OR, use "in" or db.sql)',
});

export const whereSchema = z
  .record(fieldKey, condition)
  .refine(maxKeys(LIMITS.whereFields), { error: `at most ${LIMITS.whereFields} fields` })
  .meta({ maxProperties: LIMITS.whereFields })
  .describe(
    'Filter: {field: value} matches equality (null matches IS NULL); {field: {op: value}} uses operators eq, ne, gt, gte, lt, lte, in, not_in, like, ilike, is_null. All conditions are ANDed. Example: {"status": "pending", "total_cents": {"gte": 1000}}.',
  );

const orderString = z.string().min(1).max(129).describe('"field" sorts ascending, "-field" descending.');
const orderObject = z.strictObject({ field: fieldName, direction: z.enum(['asc', 'desc']).optional().describe('Default asc.') });
const orderItem = z.union([orderString, orderObject], { error: 'expected "field", "-field" or {"field": …, "direction": "asc"|"desc"}' });
const orderBy = z
  .union([orderString, orderObject, z.array(orderItem).min(1).max(LIMITS.orderBy)], { error: 'expected "field", "-field", {"field", "direction"} or a list of them' })
  .describe('Sort order: "field" ascending, "-field" descending, or {"field", "direction"}; a list sorts by each in turn. Example: ["-created_at", "id"].');

const count = () =>
  z
    .number({ error: typeError('expected a whole number') })
    .int({ error: 'expected a whole number' })
    .min(0, { error: 'expected 0 or more' })
    .max(Number.MAX_SAFE_INTEGER);
const limit = count().describe('Return at most this many rows (the policy caps it in any case).');
const offset = count().describe('Skip this many rows first (use with order_by for stable pages).');
const select = z.array(fieldKey).min(1).max(LIMITS.selectFields).describe('Fields to return (default: every field you can see).');
const key = z
  .union([scalar, z.record(fieldKey, scalar)], { error: 'expected the primary key value, or {field: value} for a composite key' })
  .describe('The primary key value (e.g. 42), or {field: value, …} for a composite key.');
const data = z
  .record(fieldKey, z.unknown())
  .refine((o) => Object.keys(o).length > 0, { error: 'data needs at least one field' })
  .refine(maxKeys(LIMITS.dataFields), { error: `at most ${LIMITS.dataFields} fields` })
  .meta({ minProperties: 1, maxProperties: LIMITS.dataFields })
  .describe('Field values: strings, numbers, booleans or null; a JSON object or array for json/jsonb columns; an array for array columns. Pass big integers and exact decimals as strings.');
const reason = text.max(LIMITS.reason).describe('Why this write is made, in one sentence (it is kept in the audit trail).');
const dryRun = z.boolean().describe('true: change nothing and return the rows the write would change, as they would be after it.');
/** The write tools' reason and dry_run, which write domain tools take too (domain.ts). */
export { reason as reasonArgument, dryRun as dryRunArgument };

/** The model argument: any name (validation), or the policy's names (specs). */
function modelSchema(models?: readonly string[]) {
  const base = models && models.length > 0 ? z.enum(models as [string, ...string[]]) : z.string({ error: typeError('expected a model name (string)') }).min(1).max(128);
  return base.describe('The model (table), as db.describe_schema lists it.');
}

/** Builders for every tool's arguments; `models` (per tool) narrows the model argument to an enum. */
export function argumentSchemas(models: Partial<Record<ToolName, readonly string[]>> = {}) {
  const model = (tool: ToolName) => modelSchema(models[tool]);
  const exactlyOneTarget = (o: { id?: unknown; where?: unknown }) => (o.id === undefined) !== (o.where === undefined);
  const oneTarget = { error: 'give exactly one of id (one row by its primary key) or where (the rows matching a filter)' };
  return {
    'db.describe_schema': z.strictObject({ model: model('db.describe_schema').optional().describe('Only this model (default: every model).') }),
    'db.query': z.strictObject({ model: model('db.query'), where: whereSchema.optional(), select: select.optional(), order_by: orderBy.optional(), limit: limit.optional(), offset: offset.optional() }),
    'db.get': z.strictObject({ model: model('db.get'), id: key, select: select.optional() }),
    'db.aggregate': z
      .strictObject({
        model: model('db.aggregate'),
        where: whereSchema.optional(),
        group_by: z.array(fieldKey).min(1).max(LIMITS.groupBy).optional().describe('Fields to group by; each group is one result row with these fields.'),
        aggregates: z
          .array(
            z
              .strictObject({
                fn: z.enum(AGGREGATE_FUNCTIONS).describe('count, sum, avg, min or max.'),
                field: fieldName.optional().describe('The field to aggregate; count without a field counts rows.'),
              })
              .refine((a) => a.fn === 'count' || a.field !== undefined, { error: 'sum, avg, min and max need a field' }),
          )
          .min(1)
          .max(LIMITS.aggregates)
          .optional()
          .describe('Aggregates to compute (default: [{"fn": "count"}]). Each result column is named fn_field (count(*) is "count"), e.g. sum of total_cents is "sum_total_cents".'),
        order_by: orderBy.optional().describe('Sort by group_by fields or aggregate names ("-sum_total_cents"): "name" ascending, "-name" descending.'),
        limit: limit.optional(),
      }),
    'db.create': z.strictObject({ model: model('db.create'), data, reason: reason.optional(), dry_run: dryRun.optional() }),
    'db.update': z
      .strictObject({
        model: model('db.update'),
        id: key.optional(),
        where: whereSchema.optional(),
        data: data.describe('The fields to change and their new values.'),
        reason: reason.optional(),
        dry_run: dryRun.optional(),
      })
      .refine(exactlyOneTarget, oneTarget),
    'db.delete': z
      .strictObject({ model: model('db.delete'), id: key.optional(), where: whereSchema.optional(), reason: reason.optional(), dry_run: dryRun.optional() })
      .refine(exactlyOneTarget, oneTarget),
    'db.sql': z.strictObject({
      sql: text.min(1).max(LIMITS.sql).describe('One read-only SQL statement (SELECT), with $1, $2 … for the params.'),
      params: z.array(scalarOrNull).max(LIMITS.sqlParams).optional().describe('Values for $1, $2 …, in order.'),
    }),
    'approvals.status': z.strictObject({
      approval_id: z.string().min(1).max(128).optional().describe('The approval id a held write returned (default: your recent approvals).'),
    }),
  };
}

type Schemas = ReturnType<typeof argumentSchemas>;
export type ToolArguments = { [K in ToolName]: z.output<Schemas[K]> };

const GENERIC = argumentSchemas();

export function isToolName(name: string): name is ToolName {
  return (TOOL_NAMES as readonly string[]).includes(name);
}

/** Keys agents bring from other tool libraries (and the brief's own examples), and what to use here. */
const INSTEAD: Record<string, string> = {
  aggregations: 'use "aggregates": [{"fn": "sum", "field": "total_cents"}]',
  include: 'joins are not available in db.query: query the related model separately, or use db.sql with a JOIN',
  fields: 'use "select"',
  columns: 'use "select"',
  filter: 'use "where"',
  filters: 'use "where"',
  order: 'use "order_by"',
  orderBy: 'use "order_by"',
  sort: 'use "order_by"',
  values: 'use "data"',
  table: 'use "model"',
  pk: 'use "id"',
  groupBy: 'use "group_by"',
  dryRun: 'use "dry_run"',
  query: 'use "sql"',
};

/**
 * The validated arguments of a tool call, or tool_arguments_invalid naming every problem (first
 * few) and the arguments the tool takes. Missing arguments are an empty object.
 */
export function parseToolArguments<N extends ToolName>(tool: N, args: unknown): ToolArguments[N] {
  const input = args === undefined || args === null ? {} : args;
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw invalidArguments(tool, [`arguments must be a JSON object, not ${Array.isArray(input) ? 'an array' : typeof input}`]);
  }
  // JSON.parse makes "__proto__" an own key; copied into a plain object it would set the
  // prototype instead, and a filter under it would silently vanish. No column is so named.
  if (hasProtoKey(input)) throw invalidArguments(tool, ['"__proto__" is not a field or argument name']);
  const schema = GENERIC[tool] as z.ZodType;
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw invalidArguments(tool, parsed.error.issues.flatMap((i) => describeIssue(tool, i as Issue, [])));
  return parsed.data as ToolArguments[N];
}

function hasProtoKey(value: unknown): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    // Deeper than any argument reaches: data values (json) are only ever stringified.
    if (v === null || typeof v !== 'object' || depth > 4) continue;
    if (Object.hasOwn(v, '__proto__')) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** The argument names of a tool, for hints. */
export function argumentNames(tool: ToolName): string[] {
  // Every tool's schema is a strict object (a refinement keeps it one in zod 4).
  return Object.keys(GENERIC[tool].shape);
}

const MAX_REPORTED = 5;

export function invalidArguments(tool: ToolName, problems: string[], hint?: string): ProxyError {
  const shown = problems.slice(0, MAX_REPORTED);
  const more = problems.length > MAX_REPORTED ? ` (and ${problems.length - MAX_REPORTED} more)` : '';
  return new ProxyError('tool_arguments_invalid', {
    message: `invalid arguments for ${tool}: ${shown.join('; ')}${more}`,
    hint: hint ?? `Fix the arguments named in the message and call ${tool} again. It takes: ${argumentNames(tool).join(', ')}.`,
  });
}

/** The zod issue fields read here (zod's own type is a wide union). */
interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  errors?: Issue[][];
}

function pathText(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

/** Allowed keys of the object at `path`, for an unknown-key message. */
function allowedKeys(tool: ToolName, path: PropertyKey[]): readonly string[] {
  if (path.length === 0) return argumentNames(tool);
  if (path[0] === 'where' && path.length === 2) return OPERATORS;
  if (path[0] === 'order_by') return ['field', 'direction'];
  if (path[0] === 'aggregates') return ['fn', 'field'];
  return [];
}

/** Readable messages for one issue; a union is reported through the branch the input was shaped for. */
function describeIssue(tool: ToolName, issue: Issue, prefix: PropertyKey[]): string[] {
  const path = [...prefix, ...issue.path];
  const at = path.length > 0 ? `${pathText(path)}: ` : '';
  switch (issue.code) {
    case 'unrecognized_keys': {
      const keys = issue.keys ?? [];
      const allowed = allowedKeys(tool, path);
      const instead = path.length === 0 ? keys.map((k) => (INSTEAD[k] ? ` ("${k}": ${INSTEAD[k]})` : '')).join('') : '';
      const what = path.length === 0 ? 'argument' : path[0] === 'where' ? 'operator' : 'key';
      return [`${at}unknown ${what}${keys.length === 1 ? '' : 's'} ${keys.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}${instead}${allowed.length ? `; allowed: ${allowed.join(', ')}` : ''}`];
    }
    case 'invalid_union': {
      const branches = issue.errors ?? [];
      const shaped = branches.filter((b) => !b.every(isTypeMismatch));
      if (shaped.length === 1) return shaped[0].flatMap((i) => describeIssue(tool, i, path));
      return [`${at}${issue.message}`];
    }
    default:
      return [`${at}${issue.message.replace(/^Invalid input: /, '')}`];
  }
}

/** The input is not of the type this branch takes at all (as opposed to: of its type, with a problem inside). */
function isTypeMismatch(issue: Issue): boolean {
  if (issue.path.length > 0) return false;
  if (issue.code === 'invalid_type' || issue.code === 'invalid_value') return true;
  return issue.code === 'invalid_union' && (issue.errors ?? []).every((b) => b.every(isTypeMismatch));
}
