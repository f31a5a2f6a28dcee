// The proxy of the idle-connections scenario (bench/idle.js), alone in a process so that its RSS
// is its own: bench/ormai.yaml (read from ORMAI_UPSTREAM_URL) with room for the connections.
// Tells its parent its port, answers memory samples, and stops when told or when the parent goes.
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
// As the command line runs (ORMAI_WASM_TIERUP=1 to compare).
require('../dist/analysis/wasm-tiering').keepParserOnBaselineCompiler();
const { startProxy } = require('../dist/app');
const { resolveConfig } = require('../dist/config/load');
const { parseStructuredFile } = require('../dist/policy/load');
const { createLogger } = require('../dist/log');

async function main() {
  const connections = Number(process.env.BENCH_IDLE_MAX);
  const file = path.join(__dirname, 'ormai.yaml');
  const doc = parseStructuredFile(fs.readFileSync(file, 'utf8'), file);
  // The agents' policy only (pgbench's needs its tables, which an idle-only run does not make).
  doc.policies = ['tenant-policy.yaml'];
  doc.max_client_connections = connections;
  // The idle agents are one tenant's.
  doc.max_connections_per_tenant = connections;
  // Logins come in batches (bench/idle.js): each batch must fit in the startup slots.
  doc.startup = { max_connections: Number(process.env.BENCH_IDLE_STARTUP) };
  doc.audit = { sinks: [{ type: 'file', path: '../.tmp/bench-idle-audit.jsonl' }] };
  const config = resolveConfig(doc, file, { ...process.env, ORMAI_LISTEN: '127.0.0.1:0', ORMAI_ADMIN_LISTEN: '127.0.0.1:0' });
  const proxy = await startProxy(config, createLogger('warn'));
  let closing;
  const close = () => (closing ??= proxy.close().finally(() => process.exit(0)));
  process.on('disconnect', close);
  process.on('message', (m) => {
    if (m.type === 'sample') {
      if (m.gc && global.gc) global.gc();
      process.send({ type: 'sample', memory: process.memoryUsage(), sessions: proxy.server.activeSessions });
    } else if (m.type === 'snapshot') {
      process.send({ type: 'snapshot', file: v8.writeHeapSnapshot(m.file) });
    } else if (m.type === 'close') {
      void close();
    }
  });
  process.send({ type: 'ready', port: proxy.port });
}

main().catch((err) => {
  process.stderr.write(`bench idle child: ${err.stack || err.message}\n`);
  process.exit(1);
});
