// `ormai-proxy rollback <audit_id>` and the admin route: find a write's audit event, show its inverse, run it on confirmation.
import { createInterface } from 'node:readline/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import { loadConfig, type ProxyConfig } from '../config/load';
import { createLogger, type Logger } from '../log';
import { adminClientConfig } from '../upstream/catalog';
import type { AuditEvent } from './event';
import { createAuditLog, postgresClient } from './factory';
import type { AuditLog } from './log';
import { describeInverse, inverseOf, runInverse, type InverseStatement, type RollbackResult } from './rollback';
import { auditTableName } from './sinks/postgres';

const EVENT_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The event with this id, from a given JSONL file, else from the configured file and postgres sinks. */
export async function findAuditEvent(config: ProxyConfig, id: string, file?: string): Promise<AuditEvent | undefined> {
  if (!EVENT_ID.test(id)) return undefined;
  const files = file ? [file] : config.raw.audit.sinks.flatMap((s) => (s.type === 'file' ? [path.resolve(config.dir, s.path)] : []));
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // The id is the first field of every line: a cheap filter before parsing.
      if (line.includes(`"${id}"`)) {
        const event = JSON.parse(line) as AuditEvent;
        if (event.id === id) return event;
      }
    }
  }
  if (file) return undefined;
  for (const sink of config.raw.audit.sinks) {
    if (sink.type !== 'postgres') continue;
    const client = new Client(postgresClient(sink, config));
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query(`SELECT event FROM ${auditTableName(sink.table).qualified} WHERE id = $1`, [id]);
      if (rows[0]) return rows[0].event as AuditEvent;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return undefined;
}

/** Runs an inverse on the proxy's own upstream connection and records the rollback in the audit trail. */
export async function executeRollback(
  config: ProxyConfig,
  event: AuditEvent,
  statements: InverseStatement[],
  by: string,
  audit: AuditLog | undefined,
): Promise<RollbackResult> {
  const policy = config.policies.find((p) => p.name === event.policy?.name);
  const client = new Client(adminClientConfig(config.upstream, 'ormai-proxy rollback'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const result = await runInverse(client, statements, policy?.statementTimeoutMs ?? 30_000);
    audit?.emit({
      kind: 'statement',
      decision: 'rolled_back',
      actor: by,
      ...(event.principal ? { principal: event.principal } : {}),
      ...(event.policy ? { policy: event.policy } : {}),
      rolls_back: event.id,
      rows: result.reverted,
      message: `reverted ${result.reverted} of ${statements.length} rows; ${result.skipped} changed since and were left alone`,
    });
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const USAGE = 'usage: ormai-proxy rollback --config FILE [--file AUDIT.jsonl] [--yes] [--by NAME] AUDIT_ID\n';

export async function rollbackCommand(args: string[], input: NodeJS.ReadableStream = process.stdin): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, file: { type: 'string' }, yes: { type: 'boolean' }, by: { type: 'string' } },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (!values.config || positionals.length !== 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  const id = positionals[0];
  const config = loadConfig(values.config);
  const log: Logger = createLogger(config.raw.log_level === 'info' ? 'warn' : config.raw.log_level);
  const event = await findAuditEvent(config, id, values.file);
  if (!event) {
    process.stderr.write(`no audit event ${id} in the configured file and postgres sinks${values.file ? ` (looked in ${values.file})` : ''}\n`);
    return 1;
  }
  let statements: InverseStatement[];
  try {
    statements = inverseOf(event);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`-- rollback of ${event.id} (${event.changes!.operation} on ${event.changes!.table}, ${statements.length} rows)\n${describeInverse(statements)};\n`);
  if (!values.yes) {
    const rl = createInterface({ input, output: process.stdout, terminal: false });
    const answer = (await rl.question('Type "yes" to run these statements: ')).trim();
    rl.close();
    if (answer !== 'yes') {
      process.stdout.write('nothing was run\n');
      return 1;
    }
  }
  const audit = await createAuditLog(config, log);
  try {
    const result = await executeRollback(config, event, statements, values.by ?? process.env.USER ?? 'cli', audit);
    process.stdout.write(`reverted ${result.reverted} of ${statements.length} rows; ${result.skipped} changed since and were left alone\n`);
    return 0;
  } finally {
    await audit.close();
  }
}
