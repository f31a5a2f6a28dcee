// Domain tools as calls (docs/domain-tools.md): arguments checked against the declared parameters and bound as $n, and what their specs show.
//
// The statement is the policy author's, the values are the agent's: each value is a parameter,
// bound as text and cast to its declared type in the statement (policy/domain-tools.ts), so no
// value ever becomes SQL text. The statement then runs through the agent's own session like any
// other, so the tool gets no privilege beyond the agent's: the pipeline adds the tenant, the
// masks and the row cap, and judges a write by the policy's grants, reasons and approvals.
import { z } from 'zod';
import { ProxyError } from '../errors/catalogue';
import { DomainToolError, domainToolTemplate, type DomainToolDecl, type DomainToolTemplate } from '../policy/domain-tools';
import type { PolicySnapshot } from '../policy/load';
import type { DomainParamType } from '../policy/schema';
import { dryRunArgument, LIMITS, reasonArgument, TOOL_NAMES } from './arguments';
import { REASON_SHOWN } from './redact';
import { writeTags } from './tags';
import type { CompiledCall } from './types';

/** The canonical names of a policy's tools: the proxy's own, then the policy's domain tools. */
export function toolNamesOf(policy: PolicySnapshot): string[] {
  return [...TOOL_NAMES, ...policy.raw.tools.map((t) => t.name)];
}

export function domainToolOf(policy: PolicySnapshot, name: string): DomainToolDecl | undefined {
  return policy.raw.tools.find((t) => t.name === name);
}

/** The text forms PostgreSQL reads for date and timestamptz; whether the date exists is the database's to say. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/;

/** A message for a missing value apart from a wrong one. */
const expected = (what: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'missing (required)' : `expected ${what}`);

const VALUES: Record<DomainParamType, () => z.ZodType> = {
  integer: () =>
    z
      .number({ error: expected('a whole number') })
      .int({ error: 'expected a whole number' })
      .min(Number.MIN_SAFE_INTEGER)
      .max(Number.MAX_SAFE_INTEGER),
  number: () => z.number({ error: expected('a number') }),
  text: () =>
    z
      .string({ error: expected('a string') })
      .max(LIMITS.sql)
      .refine((v) => !v.includes('\0'), { error: 'text cannot contain a zero byte (\\u0000)' }),
  boolean: () => z.boolean({ error: expected('true or false') }),
  date: () => z.string({ error: expected('a date (YYYY-MM-DD)') }).regex(ISO_DATE, { error: 'expected a date (YYYY-MM-DD)' }),
  timestamp: () => z.string({ error: expected('an ISO 8601 date-time') }).regex(ISO_TIMESTAMP, { error: 'expected an ISO 8601 date-time, e.g. 2024-05-01T09:30:00Z' }),
  uuid: () => z.guid({ error: expected('a UUID') }),
};

/** What the description adds where the JSON type alone does not say the form. */
const FORMS: Partial<Record<DomainParamType, string>> = {
  date: ' (a date, YYYY-MM-DD)',
  timestamp: ' (an ISO 8601 date-time, e.g. 2024-05-01T09:30:00Z; without an offset, in the database session\'s time zone)',
  uuid: ' (a UUID)',
};

const schemas = new WeakMap<DomainToolTemplate, z.ZodObject>();

/** The tool's arguments: its parameters (optional ones may be null), plus reason and dry_run when it writes. */
export function domainArgumentSchema(template: DomainToolTemplate): z.ZodObject {
  let schema = schemas.get(template);
  if (!schema) {
    const shape: Record<string, z.ZodType> = {};
    for (const [name, param] of Object.entries(template.decl.params)) {
      const value = VALUES[param.type]();
      shape[name] = (param.required ? value : value.nullable().optional()).describe(`${param.description}${FORMS[param.type] ?? ''}`);
    }
    if (template.writes.length > 0) Object.assign(shape, { reason: reasonArgument.optional(), dry_run: dryRunArgument.optional() });
    schemas.set(template, (schema = z.strictObject(shape)));
  }
  return schema;
}

/**
 * The statement a domain tool call runs. Throws ProxyError tool_arguments_invalid for arguments
 * that are not the declared ones or not of their type.
 */
export function compileDomainCall(decl: DomainToolDecl, raw: unknown): CompiledCall {
  const template = domainToolTemplate(decl);
  const input = raw === undefined || raw === null ? {} : raw;
  if (typeof input !== 'object' || Array.isArray(input)) throw invalid(template, [`arguments must be a JSON object, not ${Array.isArray(input) ? 'an array' : typeof input}`]);
  // A JSON "__proto__" key copied into an object would set its prototype: refused like db.*'s.
  if (Object.hasOwn(input, '__proto__')) throw invalid(template, ['"__proto__" is not an argument name']);
  const parsed = domainArgumentSchema(template).safeParse(input);
  if (!parsed.success) throw invalid(template, parsed.error.issues.map((i) => describe(template, i as Issue)));
  const args = parsed.data as Record<string, unknown>;
  const params = template.params.map((name) => paramText(args[name]));
  // As the agent sent them, every value replaced by the placeholder of its parameter.
  const redacted: Record<string, unknown> = {};
  for (const key of Object.keys(input)) {
    const at = template.params.indexOf(key);
    if (at >= 0) redacted[key] = args[key] === null ? null : `$${at + 1}`;
    else if (key === 'reason') redacted[key] = REASON_SHOWN;
    else if (key === 'dry_run') redacted[key] = args[key];
  }
  if (template.writes.length === 0) return { sql: template.sql, params, shape: 'rows', redactedArguments: redacted, flags: [] };
  const write = args as { reason?: string; dry_run?: boolean };
  return { sql: `${writeTags(write)}${template.sql}`, params, shape: 'write', redactedArguments: redacted, flags: [], ...(write.dry_run ? { dryRun: true } : {}) };
}

/** Parameter text as PostgreSQL's input functions read it; absent or null is NULL. */
function paramText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' ? value : String(value);
}

/** A domain tool the policy offers: what its spec shows (schemas.ts turns it into JSON Schema). */
export interface DomainOffer {
  name: string;
  description: string;
  schema: z.ZodObject;
  /** Every write grant it needs requires a reason: the spec lists reason as required. */
  reasonRequired: boolean;
  writes: boolean;
}

/**
 * The policy's domain tools as offered to the agent. A write tool that some table it writes has
 * no grant for is left out (every call would be refused, model_writes_disabled), as db.* write
 * tools are; so is a tool that does not compile (start-up and reload refuse those anyway).
 */
export function domainOffers(policy: PolicySnapshot): DomainOffer[] {
  const tenant = policy.raw.tenant_scope?.column;
  const offers: DomainOffer[] = [];
  for (const decl of policy.raw.tools) {
    let template: DomainToolTemplate;
    try {
      template = domainToolTemplate(decl);
    } catch (err) {
      if (err instanceof DomainToolError) continue;
      throw err;
    }
    const rules = template.writes.map((w) => policy.writeRule({ ...(w.schema ? { schema: w.schema } : {}), name: w.name, op: w.op }));
    if (rules.some((r) => r === undefined)) continue;
    const writes = rules.length > 0;
    const reasonRequired = rules.some((r) => r!.requireReason);
    const changes = writes
      ? ` It changes data: ${reasonRequired ? 'a reason (one sentence: why, for whom) is required' : 'a reason is optional but recorded in the audit trail'}; dry_run: true previews the change without making it.`
      : '';
    const scoped = tenant ? ' It works on your tenant\'s rows only.' : '';
    offers.push({ name: decl.name, description: `${decl.description.trim()}${changes}${scoped}`, schema: domainArgumentSchema(template), reasonRequired, writes });
  }
  return offers;
}

// ---- errors ----

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
}

function allowed(template: DomainToolTemplate): string[] {
  return Object.keys(domainArgumentSchema(template).shape);
}

function describe(template: DomainToolTemplate, issue: Issue): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue.keys ?? []).map((k) => JSON.stringify(k.slice(0, 64)));
    const names = allowed(template);
    return `unknown argument${keys.length === 1 ? '' : 's'} ${keys.join(', ')}; ${names.length > 0 ? `allowed: ${names.join(', ')}` : 'the tool takes no arguments'}`;
  }
  const at = issue.path.map(String).join('.');
  return `${at ? `${at}: ` : ''}${issue.message.replace(/^Invalid input: /, '')}`;
}

const MAX_REPORTED = 5;

function invalid(template: DomainToolTemplate, problems: string[]): ProxyError {
  const name = template.decl.name;
  const more = problems.length > MAX_REPORTED ? ` (and ${problems.length - MAX_REPORTED} more)` : '';
  const names = allowed(template);
  return new ProxyError('tool_arguments_invalid', {
    message: `invalid arguments for ${name}: ${problems.slice(0, MAX_REPORTED).join('; ')}${more}`,
    hint: `Fix the arguments named in the message and call ${name} again. ${names.length > 0 ? `It takes: ${names.join(', ')}.` : 'It takes no arguments.'}`,
  });
}
