// `ormai-proxy tools` (a principal's tool specs, for an agent SDK) and `ormai-proxy mcp` (MCP over stdio as a principal).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { buildAuthSettings, startProxy } from '../app';
import { initAnalysis } from '../analysis/parser';
import { authenticateBearer, localPrincipal } from '../auth/bearer';
import type { Principal } from '../auth/principal';
import { loadConfig, type ProxyConfig } from '../config/load';
import { createLogger } from '../log';
import { checkDomainTools, selectPolicy, type PolicySnapshot } from '../policy/load';
import { createMcpServer } from './mcp';
import { toolSpecs, toolSpecsAs, type ToolSpecFormat } from './schemas';

export const TOOLS_USAGE = `Usage: ormai-proxy tools --config FILE (--user NAME | --token-file FILE) [--format FORMAT]
  Prints, as JSON, the tools the principal's policy gives it (the policy chosen as at login, by
  its roles), for handing to an agent:
    --format anthropic     Messages API tools: [{ name, description, input_schema }]
    --format openai        Chat Completions tools: [{ type: "function", function: { name, description, parameters } }]
    --format mcp           MCP tools/list: [{ name, title, description, inputSchema }]
    --format json-schema   one JSON Schema per tool, by its canonical name (db.query) (default)
  --user NAME        a user of auth.users_file
  --token-file FILE  a file holding the principal's bearer token (a users-file token or a JWT)
  The database is not contacted. Exit: 0 printed, 1 unknown principal, no policy or invalid files, 2 usage error.
`;

export const MCP_USAGE = `Usage: ormai-proxy mcp --config FILE (--user NAME | --token-file FILE) [--admin-listen HOST:PORT]
  Serves the tools over MCP on stdin and stdout as one principal, with the proxy's engine in this
  process: its policy, budgets, approvals and audit trail, as configured in FILE.
  --user NAME        a user of auth.users_file; this local process is trusted as that user
  --token-file FILE  a file holding the principal's bearer token (a users-file token or a JWT)
  --admin-listen     where this process's admin API listens (approve held writes there with the
                     memory approvals store). Default: an ephemeral loopback port, logged.
  stdout carries MCP only: logs go to stderr, and so do audit events of a stdout sink. The agent
  listener takes an ephemeral loopback port and tools.listen is not opened. Give this process an
  audit file of its own: a hash-chained file has one writer.
  Attach it to an MCP client as a stdio server, e.g.:
    { "command": "ormai-proxy", "args": ["mcp", "--config", "/etc/ormai/ormai.yaml", "--user", "support-bot"] }
`;

const FORMATS: readonly ToolSpecFormat[] = ['anthropic', 'openai', 'mcp', 'json-schema'];

class UsageError extends Error {}

interface PrincipalFlags {
  user?: string;
  'token-file'?: string;
}

/** The principal named on the command line, and the policy it selects (as the handshake would). */
async function principalOf(config: ProxyConfig, flags: PrincipalFlags): Promise<{ principal: Principal; policy: PolicySnapshot }> {
  const auth = await buildAuthSettings(config);
  let principal: Principal | undefined;
  if (flags.user !== undefined) {
    principal = localPrincipal(auth, flags.user);
    if (!principal) throw new Error(`no user "${flags.user}" in the users file of ${config.file}`);
  } else {
    const file = flags['token-file']!;
    let token: string;
    try {
      token = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new Error(`cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    // The token is never repeated, not even in the error.
    principal = await authenticateBearer(auth, `Bearer ${token}`);
    if (!principal) throw new Error(`the token in ${file} is no user's token_sha256 in the users file, nor a JWT that auth.jwt accepts`);
  }
  const policy = selectPolicy(config.policies, principal);
  if (!policy) throw new Error(`no policy applies to "${principal.user}" (roles: ${principal.roles.join(', ') || 'none'}); see require_principal_role`);
  return { principal, policy };
}

function parse(args: string[], extra: Record<string, { type: 'string' }>) {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, user: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra },
    strict: true,
    allowPositionals: true,
  });
  const v = values as Record<string, string | boolean | undefined>;
  if (v.help) return { help: true as const, values: v };
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (typeof v.config !== 'string') throw new UsageError('--config FILE is required');
  if ((v.user === undefined) === (v['token-file'] === undefined)) throw new UsageError('give one of --user NAME or --token-file FILE');
  return { help: false as const, values: v };
}

/** Runs a command body: usage errors exit 2 with the usage, others 1 with the message. */
async function guarded(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    const usageError = err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`ormai-proxy ${name}: ${(err as Error).message}\n${usageError ? usage : ''}`);
    return usageError ? 2 : 1;
  }
}

export function toolsCommand(args: string[]): Promise<number> {
  return guarded('tools', TOOLS_USAGE, async () => {
    const { help, values } = parse(args, { format: { type: 'string' } });
    if (help) {
      process.stdout.write(TOOLS_USAGE);
      return 0;
    }
    const format = (values.format ?? 'json-schema') as ToolSpecFormat;
    if (!FORMATS.includes(format)) throw new UsageError(`--format takes ${FORMATS.join(', ')}`);
    // Only the policy and users files are read: the database is never contacted, so its URL (a
    // secret perhaps not mounted where this runs) is not asked for.
    const config = loadConfig(values.config as string, { ...process.env, ORMAI_UPSTREAM_URL: 'postgres://unused@127.0.0.1:1/unused' });
    const { policy } = await principalOf(config, values as PrincipalFlags);
    // The policy's domain tools are compiled with PostgreSQL's parser (policy/domain-tools.ts).
    await initAnalysis();
    checkDomainTools([policy]);
    process.stdout.write(`${JSON.stringify(toolSpecsAs(toolSpecs(policy), format), null, 2)}\n`);
    return 0;
  });
}

/**
 * The requests a transport has taken and not yet answered: `watch()` (after the server has
 * connected) follows them, and the function resolves once none is left.
 */
function awaitAnswers(transport: StdioServerTransport): (() => Promise<void>) & { watch(): void } {
  const open = new Set<string | number>();
  const idle: Array<() => void> = [];
  const settle = () => {
    if (open.size === 0) for (const resolve of idle.splice(0)) resolve();
  };
  const answered = (() => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve)))) as (() => Promise<void>) & { watch(): void };
  answered.watch = () => {
    const onmessage = transport.onmessage;
    const send = transport.send.bind(transport);
    transport.onmessage = (message: JSONRPCMessage) => {
      if ('id' in message && 'method' in message) open.add(message.id);
      onmessage?.(message);
    };
    transport.send = async (message: JSONRPCMessage) => {
      try {
        await send(message);
      } finally {
        if ('id' in message && !('method' in message)) {
          if (message.id !== undefined) open.delete(message.id);
          settle();
        }
      }
    };
  };
  return answered;
}

/** Resolves once the MCP client has gone (stdin ended) or a signal asked to stop; the proxy is then closed. */
export function mcpCommand(args: string[]): Promise<number> {
  return guarded('mcp', MCP_USAGE, async () => {
    const { help, values } = parse(args, { 'admin-listen': { type: 'string' } });
    if (help) {
      process.stdout.write(MCP_USAGE);
      return 0;
    }
    // This process serves one principal over stdio: the agent listener is nobody's (an ephemeral
    // loopback port), and the HTTP tool door belongs to the proxy that `serve` runs.
    const env = { ...process.env, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: (values['admin-listen'] as string | undefined) ?? '127.0.0.1:0' };
    const loaded = loadConfig(values.config as string, env);
    const config: ProxyConfig = { ...loaded, raw: { ...loaded.raw, tools: { ...loaded.raw.tools, listen: undefined } } };
    const { principal, policy } = await principalOf(config, values as PrincipalFlags);
    const log = createLogger(config.raw.log_level);
    const proxy = await startProxy(config, log, { auditStdout: process.stderr });
    const server = createMcpServer(proxy.tools.runner, principal, () => proxy.tools.specs(principal) ?? [], { log });
    let stopped!: () => void;
    const done = new Promise<void>((resolve) => (stopped = resolve));
    let stopping = false;
    const stop = (why: string) => {
      // Closing the server closes its transport, which calls back here: once is enough.
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'mcp: shutting down');
      void (async () => {
        try {
          await server.close();
          await proxy.close();
        } catch (err) {
          log.error({ err: (err as Error).message }, 'mcp: shutdown failed');
        } finally {
          stopped();
        }
      })();
    };
    server.onclose = () => stop('transport closed');
    // The SDK's stdio transport does not watch for the end of stdin: that is the client going away.
    const transport = new StdioServerTransport(process.stdin, process.stdout);
    const answered = awaitAnswers(transport);
    // A client that sends its requests and closes stdin at once still gets every answer.
    process.stdin.once('end', () => void answered().then(() => stop('stdin ended')));
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    await server.connect(transport);
    answered.watch();
    log.info({ user: principal.user, tenant_id: principal.tenantId, policy: policy.name, admin: `${proxy.admin.host}:${proxy.admin.port}` }, 'mcp: serving tools on stdio');
    await done;
    // The last answers may still be on their way into the pipe: the process exits after them.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    return 0;
  });
}
