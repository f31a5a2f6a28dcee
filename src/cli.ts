#!/usr/bin/env node
// The ormai-proxy command line: serve, demo, check, test, rls, tools, mcp, hash-password, admin-token, audit verify, rollback.
import { parseArgs } from 'node:util';
import { newIdentityToken } from './admin/auth';
import { startProxy } from './app';
import { rollbackCommand } from './audit/rollback-command';
import { keepParserOnBaselineCompiler } from './analysis/wasm-tiering';
import { auditCommand } from './audit/verify';
import { hashPassword } from './auth/verifier';
import { loadConfig } from './config/load';
import { runDemo } from './demo/demo';
import { createLogger } from './log';
import { runCheckCommand } from './policy/tooling/check';
import { rlsCommand } from './policy/tooling/rls';
import { runTestCommand } from './policy/tooling/suite';

const USAGE = `Usage:
  ormai-proxy serve --config FILE      run the proxy
  ormai-proxy demo [--listen HOST:PORT] [--admin-listen HOST:PORT] [--tools-listen HOST:PORT]
                                       embedded PostgreSQL + proxy with the quickstart policy
  ormai-proxy check --config FILE [--strict] [--json]
                                       validate the configuration and policy files, lint the policies against the database
  ormai-proxy test --config FILE CASES.yaml
                                       run a policy regression suite through an in-process proxy
  ormai-proxy rls --config FILE [--role NAME]
                                       print the row-level security SQL that upstream.read_scope: rls needs
  ormai-proxy tools --config FILE (--user NAME | --token-file FILE) [--format anthropic|openai|mcp|json-schema]
                                       print the tool specs of that principal's policy, for an agent SDK
  ormai-proxy mcp --config FILE (--user NAME | --token-file FILE) [--admin-listen HOST:PORT]
                                       serve the tools over MCP on stdio as that principal
  ormai-proxy hash-password            read a password on stdin, print a SCRAM-SHA-256 verifier
  ormai-proxy audit verify FILE        check the hash chain of an audit file (exit 0 intact, 1 tampered)
  ormai-proxy rollback (--config FILE | --admin-url URL) [--token-file FILE] [--yes] AUDIT_ID
                                       have the running proxy show the inverse of a write and run it on confirmation
  ormai-proxy admin-token NAME [--role metrics]
                                       print a new admin token for NAME and its admin.identities_file entry
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** `ormai-proxy admin-token NAME`: the token on stdout's first line, the entry for admin.identities_file after it. */
function adminTokenCommand(args: string[]): number {
  const usage = 'usage: ormai-proxy admin-token NAME [--role metrics]\n  prints a new random token for NAME, then the line to add under identities: in admin.identities_file\n  --role metrics: the token may only read /metrics (for Prometheus)\n';
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    process.stdout.write(usage);
    return 0;
  }
  let role: 'admin' | 'metrics' = 'admin';
  const rest = [...args];
  const at = rest.indexOf('--role');
  if (at >= 0) {
    const value = rest[at + 1];
    if (value !== 'metrics' && value !== 'admin') {
      process.stderr.write(`--role takes admin or metrics\n${usage}`);
      return 2;
    }
    role = value;
    rest.splice(at, 2);
  }
  const name = rest[0]?.trim() ?? '';
  if (rest.length !== 1 || name === '' || name.startsWith('-') || /[\u0000-\u001f\u007f]/.test(name)) {
    process.stderr.write(`a non-empty NAME without control characters is needed\n${usage}`);
    return 2;
  }
  const { token, entry } = newIdentityToken(name, role);
  process.stdout.write(`${token}\n`);
  process.stderr.write(`give the token above to ${name} (it is shown once); add this line under identities: in admin.identities_file:\n${entry}\n`);
  return 0;
}

function toolCommands(): typeof import('./tools/commands') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./tools/commands') as typeof import('./tools/commands');
}

async function main(argv: string[]): Promise<number> {
  // Before anything loads the parser: V8 reads the flag when it compiles the module.
  keepParserOnBaselineCompiler();
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  // check and test take their own flags (--strict, --json, a case file).
  if (command === 'check') return runCheckCommand(rest);
  if (command === 'test') return runTestCommand(rest);
  if (command === 'rls') return rlsCommand(rest);
  if (command === 'audit') return auditCommand(rest);
  if (command === 'rollback') return rollbackCommand(rest);
  if (command === 'admin-token') return adminTokenCommand(rest);
  // The tool commands load the MCP SDK; serve does not need it unless tools.listen is set.
  if (command === 'tools') return toolCommands().toolsCommand(rest);
  if (command === 'mcp') return toolCommands().mcpCommand(rest);
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string', short: 'c' }, listen: { type: 'string' }, 'admin-listen': { type: 'string' }, 'tools-listen': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case 'serve': {
      if (!values.config) throw new Error('serve needs --config FILE');
      const config = loadConfig(values.config);
      const log = createLogger(config.raw.log_level);
      const proxy = await startProxy(config, log);
      const stop = () => {
        log.info('shutting down');
        void proxy.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // The files are watched too; SIGHUP is for volumes that give no events, and recompiles against a fresh catalog.
      process.on('SIGHUP', () => {
        log.info('SIGHUP: reloading policy and users files');
        void proxy.reload();
      });
      return -1;
    }
    case 'demo':
      await runDemo({ listen: values.listen, adminListen: values['admin-listen'], toolsListen: values['tools-listen'], configFile: values.config });
      return -1;
    case 'hash-password': {
      const password = await readStdin();
      if (password === '') {
        process.stderr.write('hash-password: the password on stdin is empty\n');
        return 2;
      }
      process.stdout.write(hashPassword(password) + '\n');
      return 0;
    }
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`ormai-proxy: ${err.message}\n`);
    process.exit(1);
  },
);
