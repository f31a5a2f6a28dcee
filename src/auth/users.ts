// The users file: agent principals (name, password or SCRAM verifier, tenant, roles), validated and snapshotted.
//
// users:
//   - name: support-bot
//     scram_verifier: "SCRAM-SHA-256$4096:...$...:..."   # or password: "..."
//     tenant_id: 42
//     roles: [agent]
//
// Plain passwords are turned into verifiers at load and then dropped, so only
// verifiers live in memory, and they are reachable only through verifierFor().
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { buildVerifier, parseVerifier, type ScramVerifier } from './verifier';

const userSchema = z
  .strictObject({
    name: z.string().min(1),
    password: z.string().min(1).optional(),
    scram_verifier: z.string().optional(),
    tenant_id: z
      .union([z.string().min(1), z.number().int()], {
        error: (issue) => (issue.input === undefined ? 'required' : 'expected a non-empty string or an integer'),
      })
      .transform(String),
    roles: z.array(z.string().min(1)).default([]),
    /** SHA-256 (hex) of a bearer token for the tool doors (docs/tools.md); the token itself is never stored. */
    token_sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256 of the token)')
      .optional(),
  })
  .superRefine((user, ctx) => {
    const given = Number(user.password !== undefined) + Number(user.scram_verifier !== undefined);
    // A user of the tool doors only may have a token and no password (it cannot log in over the wire).
    if (given > 1 || (given === 0 && user.token_sha256 === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of password or scram_verifier (or only token_sha256, for the tool doors)' });
    }
    if (user.scram_verifier !== undefined && parseVerifier(user.scram_verifier) === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['scram_verifier'],
        message: 'not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)',
      });
    }
  });

export const usersFileSchema = z
  .strictObject({ users: z.array(userSchema) })
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    const tokens = new Set<string>();
    file.users.forEach((user, i) => {
      if (seen.has(user.name)) ctx.addIssue({ code: 'custom', path: ['users', i, 'name'], message: `duplicate user "${user.name}"` });
      seen.add(user.name);
      if (user.token_sha256 !== undefined) {
        if (tokens.has(user.token_sha256)) ctx.addIssue({ code: 'custom', path: ['users', i, 'token_sha256'], message: 'two users have the same token' });
        tokens.add(user.token_sha256);
      }
    });
  });

export interface UserRecord {
  readonly name: string;
  readonly tenantId: string;
  readonly roles: readonly string[];
}

/** An immutable view of one load of the users file. */
export class UsersSnapshot {
  readonly #users = new Map<string, UserRecord>();
  readonly #verifiers = new Map<string, ScramVerifier>();
  readonly #tokens = new Map<string, string>();

  constructor(entries: ReadonlyArray<UserRecord & { verifier?: ScramVerifier; tokenSha256?: string }>) {
    for (const { name, tenantId, roles, verifier, tokenSha256 } of entries) {
      this.#users.set(name, Object.freeze({ name, tenantId, roles: Object.freeze([...roles]) }));
      if (verifier) this.#verifiers.set(name, verifier);
      if (tokenSha256) this.#tokens.set(tokenSha256, name);
    }
  }

  /** The user whose bearer token has this SHA-256 (hex). */
  byTokenDigest(sha256: string): UserRecord | undefined {
    const name = this.#tokens.get(sha256);
    return name === undefined ? undefined : this.#users.get(name);
  }

  get size(): number {
    return this.#users.size;
  }

  get(name: string): UserRecord | undefined {
    return this.#users.get(name);
  }

  has(name: string): boolean {
    return this.#users.has(name);
  }

  names(): string[] {
    return [...this.#users.keys()];
  }

  /** The secret side of a user; kept out of get() so that logging a record cannot leak it. */
  verifierFor(name: string): ScramVerifier | undefined {
    return this.#verifiers.get(name);
  }

  toJSON(): { users: UserRecord[] } {
    return { users: [...this.#users.values()] };
  }

  toString(): string {
    return `UsersSnapshot(${this.#users.size} users)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function issuePath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');
}

/** One line per zod issue, with its path; zod messages name keys and types, never values. */
export function describeIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  return issues.map((issue) => `  - ${issuePath(issue.path) || '(root)'}: ${issue.message}`).join('\n');
}

/** Validates parsed YAML/JSON; throws an Error listing every issue with its path. */
export function buildUsersSnapshot(data: unknown, source = 'users file'): UsersSnapshot {
  const result = usersFileSchema.safeParse(data);
  if (!result.success) {
    throw new Error(`invalid ${source}:\n${describeIssues(result.error.issues)}`);
  }
  return new UsersSnapshot(
    result.data.users.map((user) => ({
      name: user.name,
      tenantId: user.tenant_id,
      roles: user.roles,
      ...(user.scram_verifier !== undefined ? { verifier: parseVerifier(user.scram_verifier)! } : user.password !== undefined ? { verifier: buildVerifier(user.password) } : {}),
      ...(user.token_sha256 !== undefined ? { tokenSha256: user.token_sha256 } : {}),
    })),
  );
}

/** Reads and validates the users file (YAML, so JSON too). */
export function loadUsersFile(path: string): UsersSnapshot {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read users file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseUsersText(text, path);
}

/** Validates the text of a users file; `path` only names it in errors. */
export function parseUsersText(text: string, path: string): UsersSnapshot {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    // yaml's own messages quote the offending source line, which may hold a password:
    // report only positions and error codes.
    const lines = doc.errors.map((e) => {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      return `  - line ${line}, column ${col}: YAML syntax error (${e.code})`;
    });
    throw new Error(`invalid users file ${path}:\n${lines.join('\n')}`);
  }
  return buildUsersSnapshot(doc.toJS(), `users file ${path}`);
}
