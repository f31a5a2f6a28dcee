// The policy regression suite file of `ormai-proxy test` (CASES.yaml): strict zod schema with defaults, loading, principals.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatIssues, parseStructuredFile } from '../load';

const json = z.union([z.string(), z.number(), z.boolean(), z.null()]);
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
const jsonValue: z.ZodType<Json> = z.lazy(() => z.union([json, z.array(jsonValue), z.record(z.string(), jsonValue)]));

const principal = z
  .strictObject({
    /** The user name the agent logs in with (a users-file entry, or any name a JWT password is for). */
    user: z.string().min(1),
    /** The password (or JWT); or give password_env. */
    password: z.string().optional(),
    /** The environment variable holding the password, for CI secrets. */
    password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
  })
  .refine((p) => (p.password === undefined) !== (p.password_env === undefined), 'give exactly one of password or password_env');

const strings = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const testCase = z
  .strictObject({
    name: z.string().min(1),
    /** A key of `principals`; or give user and password on the case itself. */
    principal: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    sql: z.string().min(1),
    /** Bind parameters (text values); they imply the extended protocol. */
    params: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
    /** simple (a Query message), extended (Parse/Bind/Execute) or both, each compared. */
    protocol: z.enum(['simple', 'extended', 'both']).optional(),
    expect: z.enum(['allowed', 'refused']),
    /** When refused: the policy code (`reason_required`, from the error's routine `ormai.reason_required`) or a SQLSTATE (`42703`). */
    code: z.string().min(1).optional(),
    /** When refused: a substring of the error message. */
    message: z.string().min(1).optional(),
    /** When allowed: the exact rows, in order; each an object by column name, or an array of values by position. */
    rows: z.array(z.union([z.record(z.string(), jsonValue), z.array(jsonValue)])).optional(),
    /** When allowed: the number of rows returned (or affected, for a write without RETURNING). */
    row_count: z.number().int().nonnegative().optional(),
    /** When allowed: substrings that must (not) appear in the JSON of the rows. */
    contains: strings.optional(),
    not_contains: strings.optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (message: string, path: string) => ctx.addIssue({ code: 'custom', message, path: [path] });
    if ((c.principal === undefined) === (c.user === undefined)) issue('give either principal or user (with password)', 'principal');
    if (c.user !== undefined && c.password === undefined) issue('user needs password', 'password');
    if (c.principal !== undefined && c.password !== undefined) issue('password belongs to the principal, not the case', 'password');
    if (c.params && c.protocol !== undefined && c.protocol !== 'extended') issue('params need the extended protocol (protocol: extended)', 'protocol');
    if (c.expect === 'allowed' && (c.code !== undefined || c.message !== undefined)) issue('code and message describe a refusal; expect: refused', 'code');
    if (c.expect === 'refused') {
      for (const key of ['rows', 'row_count', 'contains', 'not_contains'] as const) if (c[key] !== undefined) issue(`${key} describes a result; expect: allowed`, key);
    }
  })
  .transform((c) => ({ ...c, protocol: c.protocol ?? (c.params ? 'extended' : 'simple') }));

export const caseFileSchema = z
  .strictObject({
    /** SQL run directly against the upstream database, with the proxy's upstream credentials, before the proxy starts. */
    setup: z.string().min(1).optional(),
    /** SQL run the same way after the last case, even when cases failed. */
    teardown: z.string().min(1).optional(),
    /** The database name in the agents' connection string; default: the config's `database`. */
    database: z.string().min(1).optional(),
    /** Milliseconds a case may take (login and statement); default 10000. */
    timeout_ms: z.number().int().positive().default(10000),
    principals: z.record(z.string().min(1), principal).default({}),
    cases: z.array(testCase).min(1),
  })
  .superRefine((file, ctx) => {
    const names = new Set<string>();
    file.cases.forEach((c, i) => {
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['cases', i, 'name'], message: `duplicate case name "${c.name}"` });
      names.add(c.name);
      if (c.principal !== undefined && !(c.principal in file.principals)) {
        ctx.addIssue({ code: 'custom', path: ['cases', i, 'principal'], message: `"${c.principal}" is not one of principals (${Object.keys(file.principals).join(', ') || 'none'})` });
      }
    });
  });

export type CaseFile = z.infer<typeof caseFileSchema>;
export type TestCase = CaseFile['cases'][number];
export type Protocol = 'simple' | 'extended';

export class CaseFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaseFileError';
  }
}

/** Validates a parsed case document; throws CaseFileError naming every bad key. */
export function parseCaseFile(doc: unknown, file: string): CaseFile {
  const result = caseFileSchema.safeParse(doc);
  if (!result.success) throw new CaseFileError(`invalid case file ${file}:\n${formatIssues(result.error)}`);
  return result.data;
}

export function loadCaseFile(file: string): CaseFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CaseFileError(`cannot read case file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseCaseFile(parseStructuredFile(text, file), file);
  } catch (err) {
    throw err instanceof CaseFileError ? err : new CaseFileError((err as Error).message.replace('invalid policy file', 'invalid case file'));
  }
}

export interface Credentials {
  user: string;
  password: string;
}

/** The login of a case; a password_env that is unset is a usage error, reported before anything runs. */
export function credentialsFor(file: CaseFile, c: TestCase, env: NodeJS.ProcessEnv = process.env): Credentials {
  if (c.user !== undefined) return { user: c.user, password: c.password ?? '' };
  const p = file.principals[c.principal!];
  if (p.password !== undefined) return { user: p.user, password: p.password };
  const password = env[p.password_env!];
  if (password === undefined) throw new CaseFileError(`principal ${c.principal}: environment variable ${p.password_env} is not set`);
  return { user: p.user, password };
}

/** The protocols a case runs under, in order. */
export function protocolsOf(c: TestCase): Protocol[] {
  return c.protocol === 'both' ? ['simple', 'extended'] : [c.protocol];
}
