// Fuzz end-of-run checks: a fresh session answers correctly, health endpoints, memory, the audit trail, tenant integrity.
const { readFileSync } = require('node:fs');
const http = require('node:http');
const { Client } = require('pg');
const { verifyFile } = require('../../dist/audit/verify');

async function direct(url, sql, params) {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Every row of both tables, straight from the database, keyed "table:id". */
async function snapshot(dbUrl) {
  const rows = new Map();
  for (const table of ['customers', 'orders']) {
    for (const row of await direct(dbUrl, `SELECT * FROM ${table} ORDER BY id`)) rows.set(`${table}:${row.id}`, JSON.stringify(row));
  }
  return rows;
}

function get(port, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`error: ${e.message}`));
  });
}

/** A new session (a real driver) runs a statement no session ran before, under both protocols. */
async function freshSession(proxy, dbUrl) {
  const [{ n: expected }] = await direct(dbUrl, 'SELECT count(*)::int AS n FROM orders WHERE tenant_id = 1');
  const marker = Date.now() % 100000;
  const c = new Client({ connectionString: `postgres://tenant1-agent:tenant1-password@127.0.0.1:${proxy.port}/app`, connectionTimeoutMillis: 10000 });
  await c.connect();
  try {
    const simple = await c.query(`SELECT count(*)::int AS n FROM orders WHERE ${marker} = ${marker}`);
    const extended = await c.query({ text: 'SELECT count(*)::int AS n, count(*) FILTER (WHERE tenant_id <> $1)::int AS foreign FROM orders', values: [1] });
    const got = { simple: simple.rows[0].n, extended: extended.rows[0].n, foreign: extended.rows[0].foreign };
    return { ok: got.simple === expected && got.extended === expected && got.foreign === 0, detail: `tenant 1 orders: expected ${expected}, simple ${got.simple}, extended ${got.extended}, other tenants' rows ${got.foreign}` };
  } finally {
    await c.end();
  }
}

function events(file) {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * The trail after the proxy closed: every line parses, the chain verifies, nothing was dropped,
 * every session that logged in also disconnected, and every row the run added to the database
 * was written by an audited, allowed write of the same tenant.
 */
/**
 * A captured key as text. A client that asked for binary results gets the capture columns in
 * binary too, and the event keeps those bytes as `\x…` hex: an int4 or int8 id is read back
 * from its big-endian bytes, so the row is still matched by its id.
 */
function keyText(id) {
  const m = /^\\x([0-9a-f]{8}|[0-9a-f]{16})$/.exec(String(id));
  return m ? BigInt.asIntN(m[1].length * 4, BigInt(`0x${m[1]}`)).toString() : String(id);
}

async function auditTrail(file, stats, before, after) {
  const problems = [];
  const verified = await verifyFile(file);
  if (!verified.ok) problems.push(`chain broken at line ${verified.badLine}: ${verified.problem}`);
  let list = [];
  try {
    list = events(file);
  } catch (e) {
    problems.push(`an event does not parse: ${e.message}`);
  }
  if (stats.dropped > 0) problems.push(`${stats.dropped} events dropped (${stats.droppedOverShare} over a session's share)`);
  if (list.length !== stats.delivered) problems.push(`${list.length} lines in the file, ${stats.delivered} delivered`);
  const logins = new Set();
  const disconnects = new Map();
  for (const e of list) {
    if (e.kind !== 'connection') continue;
    if (e.decision === 'login') logins.add(e.session_id);
    if (e.decision === 'disconnect') disconnects.set(e.session_id, (disconnects.get(e.session_id) ?? 0) + 1);
  }
  const unclosed = [...logins].filter((s) => disconnects.get(s) !== 1);
  if (unclosed.length) problems.push(`${unclosed.length} sessions without exactly one disconnect event (e.g. ${unclosed[0]})`);
  // Rows the run added: each must appear in an allowed write event of its own tenant.
  // Writes whose rows were not captured (binary results, a capture cut short) still count their rows.
  const written = new Map();
  const uncaptured = new Map();
  for (const e of list) {
    if (e.kind !== 'statement' || e.decision !== 'allowed' || e.statement_kind !== 'write') continue;
    const tenant = String(e.principal.tenant_id);
    if (!e.changes || e.changes.truncated) uncaptured.set(tenant, (uncaptured.get(tenant) ?? 0) + (e.rows ?? 0));
    for (const row of e.changes?.rows ?? []) written.set(`${e.changes.table.split(".").pop()}:${keyText(row.key.id)}`, tenant);
  }
  let added = 0;
  for (const [key, json] of after) {
    if (before.has(key)) continue;
    added++;
    const tenant = String(JSON.parse(json).tenant_id);
    if (written.has(key)) {
      if (written.get(key) !== tenant) problems.push(`row ${key} has tenant ${tenant}, written by tenant ${written.get(key)}`);
    } else if ((uncaptured.get(tenant) ?? 0) > 0) uncaptured.set(tenant, uncaptured.get(tenant) - 1);
    else problems.push(`row ${key} (tenant ${tenant}) is in the database but in no audited write of its tenant`);
  }
  const decisions = {};
  for (const e of list) if (e.kind === 'statement') decisions[e.decision] = (decisions[e.decision] ?? 0) + 1;
  return { ok: problems.length === 0, problems: problems.slice(0, 10), events: list.length, decisions, sessions: logins.size, rowsAdded: added, lastHash: verified.lastHash };
}

/** Rows that existed before the run are unchanged; no order references another tenant's customer. */
async function tenantIntegrity(dbUrl, before, after) {
  const problems = [];
  for (const [key, json] of before) {
    if (!after.has(key)) problems.push(`row ${key} was deleted`);
    else if (after.get(key) !== json) problems.push(`row ${key} changed: ${json} → ${after.get(key)}`);
  }
  for (const key of after.keys()) if (!before.has(key) && key.startsWith('customers:')) problems.push(`row ${key} was added`);
  const [{ n }] = await direct(dbUrl, 'SELECT count(*)::int AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.tenant_id <> c.tenant_id');
  if (n > 0) problems.push(`${n} orders reference a customer of another tenant`);
  return { ok: problems.length === 0, problems: problems.slice(0, 10) };
}

module.exports = { snapshot, get, freshSession, auditTrail, tenantIntegrity, direct };
