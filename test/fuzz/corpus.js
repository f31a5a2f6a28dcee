// Fuzz seed corpus: well-formed message sequences over the quickstart schema, simple and extended protocol.
//
// Every sequence ends in a Query or a Sync, so unmutated it always earns a ReadyForQuery: a
// session that stays silent after one of these is a hang, not a fuzzing artefact.

/** Quickstart customers per tenant (seed.sql): inserting an order needs one of them. */
const CUSTOMERS = { 1: [1, 2, 3], 2: [4, 5] };

const READS = [
  'SELECT id, name, email, phone FROM customers ORDER BY id',
  'SELECT count(*) FROM orders',
  'SELECT * FROM orders WHERE status = \'paid\' ORDER BY id LIMIT 5',
  'SELECT o.id, c.name, o.total_cents FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total_cents > 1000',
  'SELECT status, sum(total_cents), count(*) FROM orders GROUP BY status ORDER BY 2 DESC',
  'WITH big AS (SELECT * FROM orders WHERE total_cents > 5000) SELECT count(*) FROM big',
  'SELECT * FROM orders WHERE tenant_id = 2',
  'SELECT to_jsonb(c) FROM customers c',
  'SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c',
  'SELECT id FROM orders UNION ALL SELECT id FROM customers',
  'SELECT upper(email), length(phone) FROM customers WHERE email LIKE \'j%\'',
  'SELECT table_name, column_name FROM information_schema.columns ORDER BY 1, 2',
  'SELECT api_secret FROM customers',
  'SELECT * FROM pg_class',
  'EXPLAIN SELECT * FROM orders WHERE id = 1',
  'SELECT row_number() OVER (PARTITION BY status ORDER BY created_at), id FROM orders',
  'SELECT * FROM customers c LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id LIMIT 1) x ON true',
  'VALUES (1, \'a\'), (2, \'b\')',
  'TABLE orders',
  'SELECT pg_sleep(0.01)',
  'SHOW statement_timeout',
];

const PARAM_READS = [
  ['SELECT * FROM customers WHERE id = $1', (t) => [String(CUSTOMERS[t][0])]],
  ['SELECT * FROM orders WHERE total_cents > $1 AND status = $2', () => ['1000', 'paid']],
  ['SELECT $1::int + $2::int', () => ['40', '2']],
  ['SELECT count(*) FROM orders WHERE id = ANY($1::int[])', () => ['{1,2,3,5,6}']],
  ['SELECT * FROM orders WHERE customer_id = $1', () => ['4']],
];

const SESSION = [
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'DEALLOCATE ALL',
  'DISCARD ALL',
  'SET statement_timeout = 1000',
  'SET statement_timeout = 100000',
  'SET search_path = pg_catalog',
  'SET ROLE postgres',
  'DROP TABLE orders',
  'COPY orders TO STDOUT',
  'PREPARE p AS SELECT 1',
  'CLOSE ALL',
  'UNLISTEN *',
];

const reason = "/*reason='fuzz'*/ ";
const insert = (t, rng) => `${reason}INSERT INTO orders (customer_id, total_cents, status) VALUES (${rng.pick(CUSTOMERS[t])}, ${rng.int(1, 99999)}, 'pending')`;
const WRITES = [
  (t, rng) => insert(t, rng),
  (t, rng) => `${insert(t, rng)} RETURNING id, tenant_id, customer_id`,
  // A customer of the other tenant: must never produce a cross-tenant reference.
  (t, rng) => `${reason}INSERT INTO orders (customer_id, total_cents) VALUES (${rng.pick(CUSTOMERS[3 - t])}, 1)`,
  (t) => `${reason}INSERT INTO orders (tenant_id, customer_id, total_cents) VALUES (${3 - t}, ${CUSTOMERS[t][0]}, 1)`,
  (t) => `${reason}INSERT INTO orders (customer_id, total_cents) SELECT id, 1 FROM customers WHERE id = ${CUSTOMERS[t][0]}`,
  () => `${reason}UPDATE orders SET status = 'paid' WHERE id = 5`,
  () => `${reason}DELETE FROM orders WHERE tenant_id = 2`,
  () => `${reason}UPDATE customers SET name = 'x'`,
  (t) => `INSERT INTO orders (customer_id, total_cents) VALUES (${CUSTOMERS[t][0]}, 7)`,
];

function statement(rng, tenant) {
  const r = rng.next();
  if (r < 0.55) return rng.pick(READS);
  if (r < 0.75) return rng.pick(WRITES)(tenant, rng);
  return rng.pick(SESSION);
}

const name = (rng) => rng.pick(['', '', 's1', 's2', 'stmt_fuzz', 'S_1']);

/** One sequence of messages (see wire.encode for their shape). */
function sequence(rng, tenant) {
  switch (rng.int(0, 9)) {
    case 0:
    case 1:
      return [{ t: 'Q', sql: statement(rng, tenant) }];
    case 2: {
      // Several statements in one Query, in and out of a transaction block.
      const n = rng.int(2, 5);
      const parts = Array.from({ length: n }, () => statement(rng, tenant));
      if (rng.chance(0.5)) parts.unshift('BEGIN'), parts.push(rng.pick(['COMMIT', 'ROLLBACK']));
      return [{ t: 'Q', sql: parts.join('; ') }];
    }
    case 3:
    case 4: {
      // Parse / Bind / Describe / Execute / Sync with parameters.
      const [sql, values] = rng.pick(PARAM_READS);
      const stmt = name(rng);
      const params = values(tenant).map((v) => Buffer.from(v));
      return [
        { t: 'P', name: stmt, sql, types: [] },
        { t: 'B', portal: '', stmt, pfmt: [], params, rfmt: rng.chance(0.2) ? [1] : [] },
        { t: 'D', target: 'P', name: '' },
        { t: 'E', portal: '', maxRows: rng.chance(0.2) ? 1 : 0 },
        ...(rng.chance(0.3) ? [{ t: 'H' }, { t: 'E', portal: '', maxRows: 0 }] : []),
        { t: 'S' },
      ];
    }
    case 5: {
      // A pipeline of unnamed statements, one Sync at the end.
      const out = [];
      for (let i = rng.int(2, 6); i > 0; i--) {
        out.push({ t: 'P', name: '', sql: statement(rng, tenant), types: [] }, { t: 'B', portal: '', stmt: '', pfmt: [], params: [], rfmt: [] }, { t: 'E', portal: '', maxRows: 0 });
      }
      out.push({ t: 'S' });
      return out;
    }
    case 6: {
      // Named statement, Describe S, then a named portal fetched in two steps, then closed.
      const stmt = rng.pick(['s1', 's2', 'named']);
      return [
        { t: 'P', name: stmt, sql: rng.pick(READS), types: [] },
        { t: 'D', target: 'S', name: stmt },
        { t: 'S' },
        { t: 'B', portal: 'p1', stmt, pfmt: [], params: [], rfmt: [] },
        { t: 'E', portal: 'p1', maxRows: 2 },
        { t: 'E', portal: 'p1', maxRows: 0 },
        { t: 'C', target: 'P', name: 'p1' },
        { t: 'C', target: 'S', name: stmt },
        { t: 'S' },
      ];
    }
    case 7: {
      // An extended-protocol write with binary and text parameters.
      const binary = rng.chance(0.5);
      const cust = rng.pick(CUSTOMERS[rng.chance(0.8) ? tenant : 3 - tenant]);
      const enc = (v) => (binary ? Buffer.from([0, 0, (v >> 8) & 0xff, v & 0xff]) : Buffer.from(String(v)));
      return [
        { t: 'P', name: '', sql: `${reason}INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2) RETURNING id`, types: binary ? [23, 23] : [] },
        { t: 'B', portal: '', stmt: '', pfmt: binary ? [1] : [], params: [enc(cust), enc(rng.int(1, 30000))], rfmt: [] },
        { t: 'E', portal: '', maxRows: 0 },
        { t: 'S' },
      ];
    }
    case 8:
      // Transaction control over the extended protocol, with DEALLOCATE in the middle.
      return [
        { t: 'Q', sql: 'BEGIN' },
        { t: 'P', name: 'tx', sql: rng.pick(READS), types: [] },
        { t: 'B', portal: '', stmt: 'tx', pfmt: [], params: [], rfmt: [] },
        { t: 'E', portal: '', maxRows: 0 },
        { t: 'S' },
        { t: 'Q', sql: rng.pick(['DEALLOCATE tx', 'DEALLOCATE ALL', 'SELECT 1']) },
        { t: 'Q', sql: rng.pick(['COMMIT', 'ROLLBACK']) },
      ];
    default:
      // Describe and Close of statements and portals that may not exist.
      return [
        { t: rng.pick(['D', 'C']), target: rng.pick(['S', 'P']), name: name(rng) },
        { t: 'B', portal: '', stmt: name(rng), pfmt: [], params: [], rfmt: [] },
        { t: 'E', portal: '', maxRows: 0 },
        { t: 'S' },
      ];
  }
}

module.exports = { sequence, statement, READS, CUSTOMERS };
