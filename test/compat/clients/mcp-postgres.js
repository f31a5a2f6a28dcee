// Compatibility workload for the MCP reference server @modelcontextprotocol/server-postgres, driven over
// stdio JSON-RPC as an agent host would: it lists tables as resources, describes them, runs read-only queries.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const h = require('../harness');

const SERVER = path.resolve(__dirname, '..', '..', '..', 'node_modules', '@modelcontextprotocol', 'server-postgres', 'dist', 'index.js');

function startServer(url) {
  const child = spawn(process.execPath, [SERVER, url], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const waiting = new Map();
  let nextId = 1;
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${msg.error.code} ${msg.error.message}`));
    else w.resolve(msg.result);
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`server exited ${code}: ${stderr.trim().split('\n').pop()}`));
    waiting.clear();
  });
  return {
    request(method, params = {}) {
      const id = nextId++;
      child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
      return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
    },
    notify(method, params = {}) {
      child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method, params }) + '\n');
    },
    close: () => child.kill(),
  };
}

/** tools/call query: the server answers errors as isError content, not as JSON-RPC errors. */
async function query(server, sql) {
  const r = await server.request('tools/call', { name: 'query', arguments: { sql } });
  const text = r.content?.map((c) => c.text).join('\n') ?? '';
  if (r.isError) throw new Error(text);
  return JSON.parse(text);
}

/** Resources are named `"table" database schema`. */
const tableOf = (r) => r.name.replace(/ database schema$/, '').replace(/"/g, '');

async function main() {
  const t = h.harness('mcp-postgres', h.moduleVersion('@modelcontextprotocol/server-postgres'));
  const { SQL, env } = h;
  const server = startServer(env.url);
  try {
    if (
      !(await t.check('connect', async () => {
        const init = await server.request('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'ormai-compat', version: '1' } });
        server.notify('notifications/initialized');
        const tools = await server.request('tools/list');
        // The server connects lazily: run one query to prove the connection.
        h.assert((await query(server, SQL.good))[0].one === 1, 'no row');
        return `${init.serverInfo?.name} ${init.serverInfo?.version}; tools: ${tools.tools.map((x) => x.name).join(', ')}`;
      }))
    )
      return;
    let resources = null;
    await t.check('introspect.tables', async () => {
      resources = (await server.request('resources/list')).resources;
      return h.checkTables(resources.map(tableOf));
    });
    await t.check('leak.tables', async () => h.checkLeakTables(resources?.map(tableOf)));
    let columns = null;
    await t.check('introspect.columns', async () => {
      const uri = resources?.find((r) => tableOf(r) === 'customers')?.uri;
      h.assert(uri, 'no customers resource');
      const r = await server.request('resources/read', { uri });
      columns = JSON.parse(r.contents[0].text).map((c) => c.column_name);
      return h.checkColumns(columns);
    });
    await t.check('leak.columns', async () => h.checkLeakColumns(columns));
    await t.check('query', async () => {
      const rows = await query(server, 'SELECT id, name FROM customers WHERE id = 1');
      h.assert(rows.length === 1, `${rows.length} rows`);
      return JSON.stringify(rows[0]);
    });
    await t.check('error.recover', async () => {
      let failed = null;
      await query(server, SQL.bad).catch((e) => (failed = e));
      h.assert(failed, 'the bad statement succeeded');
      h.assert((await query(server, SQL.good))[0].one === 1, 'no row after the error');
      return `${failed.message.slice(0, 100)}; then SELECT 1 ok`;
    });
    await t.check('rowcap', async () => h.checkRowcap((await query(server, SQL.rowcap)).length));
  } finally {
    server.close();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
