// `ormai-proxy rollback <audit_id>`, a client of the running proxy's admin API, and what the admin route runs: find a write's event, run its inverse.
import { createInterface } from 'node:readline/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseCommand } from '../cli-args';
import { loadConfig, type ProxyConfig } from '../config/load';
import { adminClient } from '../upstream/catalog';
import type { AuditEvent } from './event';
import { withSinkConnection } from './factory';
import type { AuditLog } from './log';
import { runInverse, type InverseStatement, type RollbackResult } from './rollback';
import { CommitFailedError } from '../upstream/commit';
import { auditTableName } from './sinks/postgres';

const EVENT_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The event with this id, from a given JSONL file, else from the configured file and postgres sinks. */
export async function findAuditEvent(config: ProxyConfig, id: string, file?: string): Promise<AuditEvent | undefined> {
  return (await locateAuditEvent(config, id, file))?.event;
}

/** The event with this id and whether a file sink held it (findAuditEvent). */
export async function locateAuditEvent(config: ProxyConfig, id: string, file?: string): Promise<Found | undefined> {
  if (!EVENT_ID.test(id)) return undefined;
  return findEvent(config, file, false, (line) => line.includes(`"${id}"`), (event) => event.id === id, 'id = $1', [id]);
}

/**
 * The event that says the transaction of `write` did not commit (its `undoes` names the write, or
 * past the first 1,000 its `undoes_range` spans it in the write's session: an error or a ROLLBACK
 * ended it, or the proxy rolled it back), if any. Every sink gets every event: `inFiles`, the
 * write was found in a file sink, which then holds this one too.
 */
export async function findUndoingEvent(config: ProxyConfig, write: Pick<AuditEvent, 'id' | 'session_id'>, inFiles: boolean, file?: string): Promise<AuditEvent | undefined> {
  const { id, session_id: session = '' } = write;
  if (!EVENT_ID.test(id)) return undefined;
  const spans = (event: AuditEvent) => event.session_id === session && event.undoes_range !== undefined && event.undoes_range[0] <= id && id <= event.undoes_range[1];
  return (
    await findEvent(
      config,
      file,
      inFiles,
      (line) => line.includes('"undoes"') && (line.includes(`"${id}"`) || (line.includes('"undoes_range"') && session !== '' && line.includes(session))),
      (event) => event.undoes?.includes(id) === true || spans(event),
      `event->'undoes' ? $1 OR (event->>'session_id' = $2 AND (event->'undoes_range'->>0) COLLATE "C" <= $1 AND (event->'undoes_range'->>1) COLLATE "C" >= $1)`,
      [id, session],
    )
  )?.event;
}

interface Found {
  event: AuditEvent;
  /** A file sink held it. */
  inFile: boolean;
}

/** The first event that `matches`, from a given JSONL file, else from the configured file and (unless `filesOnly`) postgres sinks (`where`: the same, in SQL). */
async function findEvent(config: ProxyConfig, file: string | undefined, filesOnly: boolean, maybe: (line: string) => boolean, matches: (event: AuditEvent) => boolean, where: string, params: string[]): Promise<Found | undefined> {
  const files = file ? [file] : config.raw.audit.sinks.flatMap((s) => (s.type === 'file' ? [path.resolve(config.dir, s.path)] : []));
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // A cheap filter on the text before parsing.
      if (!maybe(line)) continue;
      const event = JSON.parse(line) as AuditEvent;
      if (matches(event)) return { event, inFile: true };
    }
  }
  if (file || filesOnly) return undefined;
  for (const sink of config.raw.audit.sinks) {
    if (sink.type !== 'postgres') continue;
    const event = await withSinkConnection(sink, config, async (client) => (await client.query(`SELECT event FROM ${auditTableName(sink.table).qualified} WHERE ${where} LIMIT 1`, params)).rows[0]?.event as AuditEvent | undefined);
    if (event) return { event, inFile: false };
  }
  return undefined;
}

/** A rollback the audit trail could not record: it ran, and its transaction was rolled back. */
export class RollbackNotRecordedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RollbackNotRecordedError';
  }
}

/**
 * Runs an inverse on the proxy's own upstream connection and records the rollback in the audit
 * trail. Like an agent's write (I7), it commits only once its event is durable (unless
 * audit.write_guarantee is async); an event the trail cannot take rolls it back
 * (RollbackNotRecordedError). The admin route refuses it before it runs while the trail takes no
 * writes (audit.acceptsWrites()).
 */
export async function executeRollback(
  config: ProxyConfig,
  event: AuditEvent,
  statements: InverseStatement[],
  by: string,
  audit: AuditLog | undefined,
): Promise<RollbackResult> {
  const policy = config.policies.find((p) => p.name === event.policy?.name);
  const client = adminClient(config.upstream, 'ormai-proxy rollback');
  await client.connect();
  let reported = false;
  // Who rolled back what, on both of the rollback's events.
  const about = {
    kind: 'statement' as const,
    actor: by,
    ...(event.principal ? { principal: event.principal } : {}),
    ...(event.policy ? { policy: event.policy } : {}),
    rolls_back: event.id,
  };
  try {
    const record = async (result: RollbackResult): Promise<void> => {
      if (!audit) return;
      reported = true;
      const recorded = audit.emit({
        ...about,
        decision: 'rolled_back',
        rows: result.reverted,
        message: `reverted ${result.reverted} of ${statements.length} rows; ${result.skipped} changed since and were left alone`,
      });
      if (audit.writeGuarantee === 'async') return;
      try {
        await audit.durable(recorded);
      } catch (err) {
        throw new RollbackNotRecordedError(
          `the rollback's audit event could not be recorded (${err instanceof Error ? err.message : String(err)}): its transaction was rolled back, nothing changed; retry once the trail is back`,
        );
      }
    };
    return await runInverse(client, statements, policy?.statementTimeoutMs ?? 30_000, event.principal?.tenant_id, record, event.changes?.settings);
  } catch (err) {
    // Reported as done, then not committed (its event not durable, COMMIT refused) or not known to
    // be (the connection failed during COMMIT): the trail says which.
    if (reported) {
      const unknown = err instanceof CommitFailedError && err.outcomeUnknown;
      audit?.emit({
        ...about,
        decision: 'error',
        code: err instanceof RollbackNotRecordedError ? 'audit_unavailable' : unknown ? 'rollback_outcome_unknown' : 'rollback_not_committed',
        message: unknown
          ? 'the connection failed while the rollback recorded just before was committing: whether it committed is not known; the rows tell'
          : 'the rollback recorded just before was not committed: nothing changed',
      });
    }
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const ROLLBACK_USAGE = `usage: ormai-proxy rollback (--config FILE | --admin-url URL) [--token-file FILE] [--yes] AUDIT_ID
  Asks the running proxy's admin API for the inverse of a write, shows it, and has the proxy run it
  on confirmation: the rollback is recorded in the proxy's own audit trail (one writer per chain),
  under the identity of the token (--token-file, default admin.token_file of --config).
`;

interface Output {
  write(text: string): unknown;
}

/** The admin API's base URL from admin_listen: a wildcard address is reached on loopback. */
function adminUrlOf(config: ProxyConfig): string {
  const { host, port } = config.adminListen;
  const reach = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reach.includes(':') ? `[${reach}]` : reach}:${port}`;
}

async function call(base: string, token: string, method: 'GET' | 'POST', route: string, body?: unknown): Promise<{ status: number; body: any }> {
  let res: Response;
  try {
    res = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(
      `no proxy answers at ${base} (${cause}). A rollback runs through the running proxy, so that its audit chain has one writer: start the proxy, or pass --admin-url`,
    );
  }
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: { code: 'not_json', message: text.slice(0, 200) } };
  }
  return { status: res.status, body: parsed };
}

export async function rollbackCommand(
  args: string[],
  input: NodeJS.ReadableStream = process.stdin,
  out: Output = process.stdout,
  err: Output = process.stderr,
): Promise<number> {
  const parsed = parseCommand(args, { config: { type: 'string', short: 'c' }, 'admin-url': { type: 'string' }, 'token-file': { type: 'string' }, yes: { type: 'boolean' } }, ROLLBACK_USAGE, out, err);
  if ('exit' in parsed) return parsed.exit;
  const { values, positionals } = parsed;
  if ((!values.config && !values['admin-url']) || positionals.length !== 1) {
    err.write(ROLLBACK_USAGE);
    return 2;
  }
  const id = positionals[0];
  let base = values['admin-url'];
  let tokenFile = values['token-file'];
  if (values.config) {
    const config = loadConfig(values.config);
    base ??= adminUrlOf(config);
    if (tokenFile === undefined && config.raw.admin.token_file !== undefined) tokenFile = path.resolve(config.dir, config.raw.admin.token_file);
  }
  if (tokenFile === undefined) {
    err.write('rollback needs a token: --token-file FILE (your own, from admin.identities_file) or admin.token_file in --config\n');
    return 2;
  }
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    err.write(`cannot read token file ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  base = base!.replace(/\/+$/, '');
  const route = `/audit/${encodeURIComponent(id)}/rollback`;
  // The proxy's answer to one admin call, or undefined once what went wrong is written.
  const ask = async (method: 'GET' | 'POST', body?: unknown): Promise<any> => {
    try {
      const answer = await call(base!, token, method, route, body);
      if (answer.status === 200) return answer.body;
      err.write(`${answer.body?.error?.code ?? answer.status}: ${answer.body?.error?.message ?? 'the proxy refused'}\n`);
    } catch (e) {
      err.write(`${(e as Error).message}\n`);
    }
    return undefined;
  };
  const shown = await ask('GET');
  if (shown === undefined) return 1;
  out.write(`-- rollback of ${shown.event} (${shown.operation} on ${shown.table}, ${shown.rows} rows)\n${shown.sql};\n`);
  if (!values.yes) {
    const rl = createInterface({ input, output: process.stdout, terminal: false });
    const answer = (await rl.question('Type "yes" to run these statements: ')).trim();
    rl.close();
    if (answer !== 'yes') {
      out.write('nothing was run\n');
      return 1;
    }
  }
  const done = await ask('POST', {});
  if (done === undefined) return 1;
  out.write(`reverted ${done.reverted} of ${done.rows} rows; ${done.skipped} changed since and were left alone\n`);
  return 0;
}
