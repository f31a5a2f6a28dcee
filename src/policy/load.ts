// Loads and validates policy files into immutable snapshots with a content hash.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { analysisLoaded } from '../analysis/parser';
import type { Principal } from '../auth/principal';
import { DomainToolError, domainToolProblems, domainToolTemplate } from './domain-tools';
import { ALWAYS_DENIED, policySchema, profileDefaults, type RawPolicy, type WriteOperation } from './schema';

export interface WriteTargetRef {
  schema?: string;
  name: string;
  op: 'insert' | 'update' | 'delete';
}

export interface ModelRef {
  schema?: string;
  table: string;
  /** The model's name for the agent's tooling (defaults to the table name). */
  name: string;
  rowFilter?: string;
}

export interface PolicySnapshot {
  readonly name: string;
  /** sha256 of the validated policy (canonical JSON), computed once per load. */
  readonly hash: string;
  readonly file: string;
  readonly raw: RawPolicy;
  readonly maxRows: number;
  readonly statementTimeoutMs: number;
  /** Joins allowed in one FROM clause (relations at one query level − 1); see analysis/join-depth.ts. */
  readonly maxJoinDepth: number;
  readonly requireReason: boolean;
  /** Table names (lower-case, unqualified) the policy registers. */
  readonly tables: ReadonlySet<string>;
  /** Registered models, names split and case-folded. */
  readonly models: readonly ModelRef[];
  /** The policy's deny_fields plus the always-denied secret patterns. */
  readonly deniedFieldGlobs: readonly string[];
  isWriteAllowed(target: WriteTargetRef): boolean;
  /** The first enable_writes grant covering the target, as rules; undefined when none does. */
  writeRule(target: WriteTargetRef): WriteRule | undefined;
}

export interface WriteRule {
  requireReason: boolean;
  /** The only columns the agent may assign (lower-case); absent = every visible column except the tenant column. */
  writableFields?: ReadonlySet<string>;
  maxAffectedRows?: number;
}

const OP_TO_OPERATION: Record<WriteTargetRef['op'], WriteOperation> = { insert: 'create', update: 'update', delete: 'delete' };

export class PolicyFileError extends Error {
  constructor(file: string, detail: string) {
    super(`invalid policy file ${file}: ${detail}`);
    this.name = 'PolicyFileError';
  }
}

/** Readable, path-qualified zod issues, one per line. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `  - ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}

export function parseStructuredFile(text: string, file: string): unknown {
  try {
    return file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text, { uniqueKeys: true });
  } catch (err) {
    throw new PolicyFileError(file, `not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function tableName(ref: string): string {
  const parts = ref.split('.');
  return parts[parts.length - 1].toLowerCase();
}

export function buildPolicy(raw: RawPolicy, file: string): PolicySnapshot {
  const defaults = profileDefaults[raw.profile];
  const tables = new Set(raw.models.map((m) => tableName(typeof m === 'string' ? m : m.table)));
  for (const grant of raw.enable_writes) {
    for (const m of grant.models) {
      if (!tables.has(tableName(m))) throw new PolicyFileError(file, `enable_writes names "${m}", which is not in models`);
    }
  }
  const models: ModelRef[] = raw.models.map((m) => {
    const spec = typeof m === 'string' ? { table: m } : m;
    const parts = spec.table.toLowerCase().split('.');
    if (parts.length > 2) throw new PolicyFileError(file, `model "${spec.table}": use table or schema.table`);
    const table = parts[parts.length - 1];
    return {
      ...(parts.length === 2 ? { schema: parts[0] } : {}),
      table,
      name: ('name' in spec && spec.name) || table,
      ...('row_filter' in spec && spec.row_filter ? { rowFilter: spec.row_filter } : {}),
    };
  });
  for (const m of raw.mask_fields) {
    if (typeof m !== 'string' && m.strategy === 'hash') {
      throw new PolicyFileError(file, `mask_fields ${m.field}: the hash strategy is not supported yet (use email, phone, partial, last4 or null)`);
    }
  }
  const grants = raw.enable_writes.map((g) => ({
    tables: new Set(g.models.map(tableName)),
    ops: new Set(g.operations),
    requireReason: g.require_reason ?? defaults.require_reason,
    writableFields: new Map(Object.entries(g.writable_fields ?? {}).map(([m, cols]) => [tableName(m), new Set(cols.map((c) => c.toLowerCase()))])),
    maxAffectedRows: g.max_affected_rows,
  }));
  for (const grant of raw.enable_writes) {
    for (const m of Object.keys(grant.writable_fields ?? {})) {
      if (!grant.models.some((g) => tableName(g) === tableName(m))) throw new PolicyFileError(file, `writable_fields names "${m}", which this grant's models do not list`);
    }
  }
  const toolProblems = domainToolProblems(raw.tools);
  if (toolProblems.length > 0) throw new PolicyFileError(file, `\n${toolProblems.map((p) => `  - ${p}`).join('\n')}`);
  // Like row filters (scope.ts): checked with the parser once it is loaded. Start-up loads the
  // files before the parser and compiles them right after it (app.ts); a reload has it already.
  if (analysisLoaded()) compileDomainTools(raw.tools, file);
  const covering = (target: WriteTargetRef) => {
    const name = target.name.toLowerCase();
    const op = OP_TO_OPERATION[target.op];
    return grants.find((g) => g.tables.has(name) && g.ops.has(op));
  };
  return Object.freeze({
    name: raw.name,
    hash: createHash('sha256').update(canonicalJson(raw)).digest('hex'),
    file,
    raw,
    maxRows: raw.max_rows ?? defaults.max_rows,
    statementTimeoutMs: raw.statement_timeout_ms ?? defaults.statement_timeout_ms,
    maxJoinDepth: raw.max_join_depth ?? defaults.max_join_depth,
    requireReason: defaults.require_reason,
    tables,
    models,
    deniedFieldGlobs: [...raw.deny_fields, ...ALWAYS_DENIED],
    isWriteAllowed(target: WriteTargetRef): boolean {
      return covering(target) !== undefined;
    },
    writeRule(target: WriteTargetRef): WriteRule | undefined {
      const grant = covering(target);
      if (!grant) return undefined;
      const fields = grant.writableFields.get(target.name.toLowerCase());
      return {
        requireReason: grant.requireReason,
        ...(fields ? { writableFields: fields } : {}),
        ...(grant.maxAffectedRows !== undefined ? { maxAffectedRows: grant.maxAffectedRows } : {}),
      };
    },
  });
}

function compileDomainTools(tools: RawPolicy['tools'], file: string): void {
  for (const tool of tools) {
    try {
      domainToolTemplate(tool);
    } catch (err) {
      if (err instanceof DomainToolError) throw new PolicyFileError(file, err.message);
      throw err;
    }
  }
}

/**
 * Compiles the domain tools of policies loaded before the parser was (start-up), so that a tool
 * whose statement does not parse or whose parameters do not match stops start-up. Throws PolicyFileError.
 */
export function checkDomainTools(policies: readonly PolicySnapshot[]): void {
  for (const policy of policies) compileDomainTools(policy.raw.tools, policy.file);
}

export function loadPolicyFile(file: string): PolicySnapshot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyFileError(file, (err as Error).message);
  }
  return parsePolicyText(text, file);
}

/** Validates the text of a policy file (`file` names it in errors and picks YAML or JSON). */
export function parsePolicyText(text: string, file: string): PolicySnapshot {
  const parsed = policySchema.safeParse(parseStructuredFile(text, file));
  if (!parsed.success) throw new PolicyFileError(file, `\n${formatIssues(parsed.error)}`);
  return buildPolicy(parsed.data, file);
}

/** The policy a principal uses: the first that requires one of its roles, else the first that requires none. */
export function selectPolicy(policies: readonly PolicySnapshot[], principal: Principal): PolicySnapshot | undefined {
  return (
    policies.find((p) => p.raw.require_principal_role !== undefined && principal.roles.includes(p.raw.require_principal_role)) ??
    policies.find((p) => p.raw.require_principal_role === undefined)
  );
}
