// The proxy's picture of the session follows PostgreSQL's (I8b): prepared statements and portals change only on
// ParseComplete, BindComplete and CloseComplete, names are compared as PostgreSQL compares them (cut to 63 bytes),
// and a refusal runs nothing under any name the agent can create. Every probe pipelines a message PostgreSQL refuses
// (a duplicate Parse, a Bind in a failed transaction, a Parse after an error) ahead of messages that depend on it,
// and then checks what really ran: rows written per tenant, rows returned, write budget spent, approvals asked, and
// the audit trail's record of the statement. These probes need control of single protocol messages, so they run
// under the extended protocol; where a simple Query changes the session (it replaces the unnamed statement and
// portal), the probe mixes both.
import path from 'node:path';
import { Client } from 'pg';
import type { AuditEvent } from '../../src/audit/event';
import { serialize } from 'pg-protocol';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startTestProxy, type TestProxy } from '../support/proxy';
import { RawClient, type Message } from '../support/raw-client';
// pg-protocol's serializer warns on every name over 63 bytes; this one writes the same bytes silently.
import { parseMessage, withResultFormats } from '../../src/upstream/messages';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const POLICY = path.join(FIXTURES, 'session-state-policy.yaml');
const APPROVAL_POLICY = path.join(FIXTURES, 'rtw-approval-policy.yaml');
const R = "/*reason='session state'*/ ";
const INSERT = `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1)`;

let db: TestDatabase;
let proxy: TestProxy | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  // Whatever ran, no tenant holds a row of another, and tenant 2's rows are as seeded.
  expect(await db.query('SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.tenant_id <> c.tenant_id')).toEqual([]);
  expect(Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM orders WHERE tenant_id = 2'))[0].n)).toBe(3);
});

async function start(policy = POLICY, overrides: Record<string, unknown> = {}): Promise<TestProxy> {
  proxy = await startTestProxy(db.url, { policies: [policy], ...overrides });
  return proxy;
}

async function withClient<T>(p: TestProxy, fn: (c: RawClient) => Promise<T>): Promise<T> {
  const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
  try {
    return await fn(c);
  } finally {
    c.end();
  }
}

async function tenantOrders(): Promise<number> {
  return Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM orders WHERE tenant_id = 1'))[0].n);
}

/** Reads answers until `count` ReadyForQuery messages have arrived. */
async function untilReadyN(c: RawClient, count: number): Promise<Message[][]> {
  const out: Message[][] = [];
  for (let i = 0; i < count; i++) out.push(await c.untilReady());
  return out;
}

type Err = Message & { code: string; message: string; routine?: string };
const errors = (ms: Message[]) => ms.filter((m) => m.name === 'error') as Err[];
const tags = (ms: Message[]) => ms.filter((m) => m.name === 'commandComplete').map((m) => (m as unknown as { text: string }).text);
const rowsOf = (ms: Message[]) => ms.filter((m) => m.name === 'dataRow').map((m) => (m as unknown as { fields: Array<string | null> }).fields);

/** Statement events of the audit trail for texts whose reason is R's, once `count` of them are there. */
async function statementEvents(p: TestProxy, count: number) {
  const ours = () => p.auditEvents().filter((e) => e.kind === 'statement' && e.reason === 'session state');
  for (let i = 0; i < 100 && ours().length < count; i++) await new Promise((r) => setTimeout(r, 20));
  return ours();
}

const runStatement = (statement: string, portal = '') => [serialize.bind({ portal, statement }), serialize.execute({ portal }), serialize.sync()];

/** The audit events, once the session's disconnect event is among them. */
async function untilDisconnected(p: TestProxy): Promise<AuditEvent[]> {
  let events: AuditEvent[] = [];
  for (let i = 0; i < 150 && !events.some((e) => e.kind === 'connection' && e.decision === 'disconnect'); i++) {
    await new Promise((r) => setTimeout(r, 20));
    events = p.auditEvents();
  }
  return events;
}

/** Every message until the connection closes (a FATAL ends the session). */
async function untilClosed(c: RawClient): Promise<Message[]> {
  const out: Message[] = [];
  for (;;) {
    try {
      out.push(await c.next(10_000));
    } catch (err) {
      if (c.closed) return out;
      throw err;
    }
  }
}

describe('a simple Query inside an extended-protocol batch (no Sync after its Execute)', () => {
  // PostgreSQL would run the Query in the batch's implicit transaction and commit the write at its
  // end, before the proxy waits for the write's event at the Sync (PostgreSQL 18 instead loses the
  // write while its event says it ran); a held-back COMMIT waited for answers PostgreSQL kept.
  for (const query of ['COMMIT', 'SELECT 1', 'END']) {
    test(`Query ${query} after the write has run: the session ends (protocol_violation), the write does not stay, and the trail says so`, async () => {
      const p = await start();
      const before = await tenantOrders();
      const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
      try {
        // The write's answer first (a Flush asks for it), so that it has certainly run.
        c.send(parseMessage('', INSERT), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }), serialize.flush());
        const ran: string[] = [];
        while (ran[ran.length - 1] !== 'commandComplete') ran.push((await c.next()).name);
        expect(ran).toEqual(['parseComplete', 'bindComplete', 'commandComplete']);
        c.send(serialize.query(query), serialize.sync());
        const answers = await untilClosed(c);
        expect(errors(answers).map((e) => [e.code, e.routine, (e as unknown as { severity: string }).severity])).toEqual([['08P01', 'ormai.protocol_violation', 'FATAL']]);
      } finally {
        c.end();
      }
      expect(await tenantOrders()).toBe(before);
      const events = await untilDisconnected(p);
      expect(events.filter((e) => e.kind === 'statement' && e.code === 'protocol_violation')).toHaveLength(1);
      // The Execute ran before the session ended: its event, and one that says it was rolled back.
      const write = events.find((e) => e.kind === 'statement' && e.statement_kind === 'write');
      expect(write?.decision).toBe('allowed');
      expect(events.filter((e) => e.undoes?.includes(write!.id))).toHaveLength(1);
    });
  }

  test('the write, Query COMMIT and Sync in one go: the session ends at once instead of waiting forever, and the write does not stay', async () => {
    const p = await start();
    const before = await tenantOrders();
    const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
    try {
      c.send(parseMessage('', INSERT), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }), serialize.query('COMMIT'), serialize.sync());
      const answers = await untilClosed(c);
      expect(errors(answers).map((e) => e.routine)).toEqual(['ormai.protocol_violation']);
    } finally {
      c.end();
    }
    expect(await tenantOrders()).toBe(before);
    const events = await untilDisconnected(p);
    expect(events.filter((e) => e.kind === 'statement' && e.code === 'protocol_violation')).toHaveLength(1);
  });

  test("the proxy's own Query (its session views, dropped by DISCARD TEMP) waits for the batch's Sync: it would commit the batch's write early", async () => {
    const p = await start();
    const before = await tenantOrders();
    await withClient(p, async (c) => {
      c.send(parseMessage('', INSERT), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }));
      c.send(parseMessage('', 'DISCARD TEMP'), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }), serialize.flush());
      const names: string[] = [];
      while (names.filter((n) => n === 'commandComplete').length < 2) names.push((await c.next()).name);
      // A Parse of a read: the views are missing, and making them would be a Query of the proxy's.
      c.send(parseMessage('', 'SELECT count(*) AS n FROM orders'), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }), serialize.flush());
      const read: string[] = [];
      while (read[read.length - 1] !== 'commandComplete') read.push((await c.next()).name);
      expect(read).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete']);
      // Still the batch's implicit transaction: nothing committed before the Sync.
      expect(await tenantOrders()).toBe(before);
      c.send(serialize.sync());
      await c.untilReady();
    });
    expect(await tenantOrders()).toBe(before + 1);
  });

  test('after a Sync the same Query runs, and a batch answered by a Flush still needs its Sync first', async () => {
    const p = await start();
    const before = await tenantOrders();
    await withClient(p, async (c) => {
      c.send(parseMessage('', INSERT), ...runStatement(''), serialize.query('SELECT 1 AS one'));
      const [ran, queried] = await untilReadyN(c, 2);
      expect(tags(ran)).toEqual(['INSERT 0 1']);
      expect(rowsOf(queried)).toEqual([['1']]);
      c.send(parseMessage('', 'SELECT 2 AS two'), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }), serialize.flush());
      expect((await c.next()).name).toBe('parseComplete');
      c.send(serialize.query('SELECT 3'));
      const answers = await untilClosed(c);
      expect(errors(answers).map((e) => e.routine)).toEqual(['ormai.protocol_violation']);
    });
    expect(await tenantOrders()).toBe(before + 1);
  });

  test('Parse and Bind with no Execute, then Query COMMIT: answered (it used to wait for answers PostgreSQL kept)', async () => {
    const p = await start();
    await withClient(p, async (c) => {
      c.send(parseMessage('', 'SELECT 1 AS one'), serialize.bind({ portal: '', statement: '' }), serialize.query('COMMIT'), serialize.sync());
      const [committed, synced] = await untilReadyN(c, 2);
      expect(committed.map((m) => m.name)).toEqual(['parseComplete', 'bindComplete', 'commandComplete', 'readyForQuery']);
      expect(synced.map((m) => m.name)).toEqual(['readyForQuery']);
    });
  });
});

describe('an Execute with no Sync or Flush behind it is bounded by the deadline (statement_timeout_ms 500, margin 300 ms)', () => {
  test('a statement PostgreSQL cannot interrupt, sent with no Sync: the proxy asks for the answer, cancels, then ends the session', async () => {
    // A chain of CTEs PostgreSQL plans for seconds without checking for interrupts (as below); a
    // client that never sends Sync or Flush. Before, the proxy's deadline was armed by those only.
    const CHAIN = 400;
    const sql = 'WITH ' + Array.from({ length: CHAIN }, (_, i) => (i === 0 ? 'c0 AS (SELECT 1 AS x)' : `c${i} AS (SELECT x + 1 AS x FROM c${i - 1})`)).join(', ') + ` SELECT * FROM c${CHAIN - 1}`;
    const p = await start(path.join(FIXTURES, 'deadline-policy.yaml'), { analysis: { max_ctes: 1000, max_expanded_nodes: 1_000_000_000 }, session: { deadline_margin_ms: 300 } });
    const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
    const started = Date.now();
    let answers: Message[];
    try {
      c.send(parseMessage('', sql), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }));
      answers = await untilClosed(c);
    } finally {
      c.end();
    }
    // 500 ms + 300 ms, a Flush; 300 ms, a cancel; 300 ms: the session ends. PostgreSQL alone plans for seconds more.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(errors(answers).map((e) => [e.code, e.routine])).toEqual([['57014', 'ormai.statement_deadline_exceeded']]);
  });

  test('a client that sends no Sync but reads: the statement ends, its answer arrives, the session goes on', async () => {
    const p = await start(path.join(FIXTURES, 'deadline-policy.yaml'), { session: { deadline_margin_ms: 300 } });
    await withClient(p, async (c) => {
      c.send(parseMessage('', 'SELECT 41 + 1 AS n'), serialize.bind({ portal: '', statement: '' }), serialize.execute({ portal: '' }));
      // The proxy's Flush at the deadline brings the answer without the client asking for it.
      const got: string[] = [];
      for (;;) {
        const m = await c.next(5000);
        got.push(m.name);
        if (m.name === 'commandComplete') break;
      }
      expect(got).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete']);
      await new Promise((r) => setTimeout(r, 1500));
      c.send(serialize.sync());
      expect((await c.untilReady()).map((m) => m.name)).toEqual(['readyForQuery']);
      c.send(serialize.query('SELECT 1 AS one'));
      expect(rowsOf(await c.untilReady())).toEqual([['1']]);
    });
  });
});

describe('a Parse PostgreSQL refuses leaves the statement it had', () => {
  test('re-Parse of an existing name as a read, pipelined ahead of its Executes: the write budget and the audit follow the write PostgreSQL keeps', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('s', INSERT),
        serialize.sync(),
        // PostgreSQL: 42P05 prepared statement "s" already exists; s is still the INSERT.
        parseMessage('s', 'SELECT 1 AS one'),
        serialize.sync(),
        ...Array.from({ length: 6 }, () => runStatement('s')).flat(),
      );
      return untilReadyN(c, 8);
    });
    expect(errors(answers[1]).map((e) => e.code)).toEqual(['42P05']);
    const runs = answers.slice(2);
    expect(runs.map((ms) => tags(ms)[0] ?? errors(ms)[0]?.routine)).toEqual([
      'INSERT 0 1', 'INSERT 0 1', 'INSERT 0 1',
      'ormai.write_rate_limited', 'ormai.write_rate_limited', 'ormai.write_rate_limited',
    ]);
    expect(await tenantOrders()).toBe(before + 3);
    const events = await statementEvents(p, 6);
    expect(events.map((e) => [e.decision, e.statement_kind, e.sql])).toEqual([
      ...Array.from({ length: 3 }, () => ['allowed', 'write', 'INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2)']),
      ...Array.from({ length: 3 }, () => ['refused', 'write', 'INSERT INTO orders (customer_id, total_cents) VALUES ($1, $2)']),
    ]);
  });

  test('re-Parse of a held write as a read: the Execute is still held for approval', async () => {
    const p = await start(APPROVAL_POLICY);
    const row = await db.query('SELECT * FROM orders WHERE id = 4');
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('h', `${R}DELETE FROM orders WHERE id = 4`),
        serialize.sync(),
        parseMessage('h', 'SELECT 1'),
        serialize.sync(),
        ...runStatement('h'),
      );
      return untilReadyN(c, 3);
    });
    expect(errors(answers[1]).map((e) => e.code)).toEqual(['42P05']);
    expect(errors(answers[2]).map((e) => e.routine)).toEqual(['ormai.pending_approval']);
    expect(await db.query('SELECT * FROM orders WHERE id = 4')).toEqual(row);
  });

  test('re-Parse of a write with capture columns as a read: Describe and the rows show only what the agent asked for', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('w', `${R}UPDATE orders SET status = status WHERE id = 1 RETURNING id`),
        serialize.sync(),
        parseMessage('w', 'SELECT 1 AS a, 2 AS b, 3 AS c, 4 AS d'),
        serialize.describe({ type: 'S', name: 'w' }),
        serialize.sync(),
        serialize.describe({ type: 'S', name: 'w' }),
        ...runStatement('w'),
      );
      return untilReadyN(c, 3);
    });
    expect(errors(answers[1]).map((e) => e.code)).toEqual(['42P05']);
    const description = answers[2].find((m) => m.name === 'rowDescription') as unknown as { fields: Array<{ name: string }> };
    expect(description.fields.map((f) => f.name)).toEqual(['id']);
    expect(rowsOf(answers[2])).toEqual([['1']]);
    expect(tags(answers[2])).toEqual(['UPDATE 1']);
  });

  test('a Parse in a failed transaction changes nothing: the read under that name still runs as the read', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('r', 'SELECT count(*) FROM orders'),
        serialize.sync(),
        serialize.query('BEGIN'),
        serialize.query('SELECT 1/0'),
        // PostgreSQL: 25P02 current transaction is aborted; r stays the read.
        parseMessage('r2', INSERT),
        serialize.sync(),
        serialize.query('ROLLBACK'),
        ...runStatement('r'),
        ...runStatement('r2'),
      );
      return untilReadyN(c, 7);
    });
    expect(errors(answers[3]).map((e) => e.code)).toEqual(['25P02']);
    expect(rowsOf(answers[5])).toEqual([[String(before)]]);
    expect(errors(answers[6]).map((e) => [e.code, e.routine])).toEqual([['26000', 'ormai.prepared_statement_not_found']]);
    expect(await tenantOrders()).toBe(before);
  });

  test('after an error the rest of the batch is skipped: a statement parsed after it does not exist', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('n', 'SELECT $1::int AS n'),
        serialize.bind({ statement: 'n', values: ['not a number'] }),
        serialize.execute({}),
        parseMessage('later', INSERT),
        serialize.sync(),
        ...runStatement('later'),
      );
      return untilReadyN(c, 2);
    });
    expect(errors(answers[0]).map((e) => e.code)).toEqual(['22P02']);
    expect(errors(answers[1]).map((e) => [e.code, e.routine])).toEqual([['26000', 'ormai.prepared_statement_not_found']]);
    expect(await tenantOrders()).toBe(before);
  });
});

describe('a Query sent while PostgreSQL skips to Sync is discarded, as PostgreSQL discards it', () => {
  // An extended-protocol error makes PostgreSQL ignore every message up to Sync, a Query too.
  // A COMMIT (or a write and COMMIT) the proxy would hold back for the audit must not wait for
  // an answer that never comes: the session answered nothing more, and kept its connection.
  test.each([
    ['COMMIT', 'COMMIT'],
    ['a write and COMMIT', `${R}INSERT INTO orders (customer_id, total_cents) VALUES (1, 1); COMMIT`],
    ['a read', 'SELECT 1'],
  ])('%s behind a refused Parse and a Flush: the Sync is answered and the session goes on', async (_label, text) => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(parseMessage('', 'SELECT 1/0x'), serialize.flush(), serialize.query(text), serialize.sync(), serialize.query('SELECT 2 AS n'));
      return untilReadyN(c, 2);
    });
    expect(errors(answers[0]).map((e) => e.code)).toEqual(['42601']);
    expect(answers[0].filter((m) => m.name !== 'error').map((m) => m.name)).toEqual(['readyForQuery']);
    expect(rowsOf(answers[1])).toEqual([['2']]);
    expect(await tenantOrders()).toBe(before);
  });
});

describe('a client that keeps sending while the session waits is read no faster than it is handled', () => {
  test('48 MiB sent behind a Bind that waits for a slow PREPARE stay with the client, then all of it is handled in order', async () => {
    const p = await start();
    // The PREPARE's text waits for a lock held here, until the test lets it go.
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      const answers = await withClient(p, async (c) => {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
        // The Bind of q waits for the Query that makes q, and the pump with it.
        c.send(serialize.query('PREPARE q AS SELECT 1 AS one; SELECT count(*) FROM orders'), ...runStatement('q'));
        const mib = 1024 * 1024;
        const copyData = Buffer.alloc(5 + mib);
        copyData[0] = 0x64; // CopyData outside COPY: PostgreSQL and the proxy ignore it
        copyData.writeInt32BE(4 + mib, 1);
        for (let i = 0; i < 48; i++) c.send(copyData);
        c.send(serialize.query('SELECT 2 AS n'));
        await new Promise((r) => setTimeout(r, 700));
        // The proxy took at most its inbox's bound and what the kernel buffers hold.
        expect(c.unsentBytes).toBeGreaterThan(16 * mib);
        await holder.query('COMMIT');
        return untilReadyN(c, 3);
      });
      expect(rowsOf(answers[1])).toEqual([['1']]);
      expect(rowsOf(answers[2])).toEqual([['2']]);
    } finally {
      await holder.end();
    }
  }, 30_000);
});

describe('names are compared as PostgreSQL compares them', () => {
  const n63 = 'x'.repeat(63);

  test('two names that share their first 63 bytes are one statement: the second Parse fails and Executes run the first', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage(`${n63}_write`, INSERT),
        serialize.sync(),
        parseMessage(`${n63}_read`, 'SELECT 1'),
        serialize.sync(),
        ...Array.from({ length: 5 }, () => runStatement(`${n63}_read`)).flat(),
      );
      return untilReadyN(c, 7);
    });
    expect(errors(answers[1]).map((e) => e.code)).toEqual(['42P05']);
    expect(answers.slice(2).map((ms) => tags(ms)[0] ?? errors(ms)[0]?.routine)).toEqual([
      'INSERT 0 1', 'INSERT 0 1', 'INSERT 0 1', 'ormai.write_rate_limited', 'ormai.write_rate_limited',
    ]);
    expect(await tenantOrders()).toBe(before + 3);
    const events = await statementEvents(p, 5);
    expect(events.filter((e) => e.statement_kind === 'write')).toHaveLength(5);
  });

  test('a name of exactly 63 bytes and the same name longer are one; a cut inside a multi-byte character too', async () => {
    const p = await start();
    const n62 = 'y'.repeat(62);
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage(n63, 'SELECT 63 AS n'),
        serialize.sync(),
        ...runStatement(`${n63}and more`),
        // 'é' and 'è' are C3 A9 and C3 A8: cut at 63 bytes, both names end in C3.
        parseMessage(`${n62}é`, 'SELECT 62 AS n'),
        serialize.sync(),
        ...runStatement(`${n62}è`),
        serialize.close({ type: 'S', name: `${n62}èèè` }),
        serialize.sync(),
        ...runStatement(`${n62}é`),
      );
      return untilReadyN(c, 6);
    });
    expect(rowsOf(answers[1])).toEqual([['63']]);
    expect(rowsOf(answers[3])).toEqual([['62']]);
    expect(tags(answers[4])).toEqual([]);
    expect(errors(answers[5]).map((e) => e.code)).toEqual(['26000']);
  });

  test('portal names are cut the same way', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        serialize.query('BEGIN'),
        parseMessage('q', 'SELECT 7 AS n'),
        serialize.bind({ portal: `${n63}_one`, statement: 'q' }),
        serialize.sync(),
        serialize.execute({ portal: `${n63}_two` }),
        serialize.sync(),
        serialize.query('ROLLBACK'),
      );
      return untilReadyN(c, 4);
    });
    expect(rowsOf(answers[2])).toEqual([['7']]);
  });
});

describe('a refusal runs nothing, whatever names the agent created', () => {
  // Names a proxy might use for a statement or portal of its own: none of them may turn a refusal into an execution.
  const OWN = ['ormai_proxy_refused', 'ormai_proxy_refused_portal', 'ormai_proxy_refused_statement', 'ORMAI_PROXY_REFUSED_STATEMENT'];

  test('refusals at Bind and at Execute inside a transaction holding writes under those names', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      for (const name of OWN) c.send(serialize.parse({ name, text: INSERT, types: [] }), serialize.bind({ portal: name, statement: name }));
      c.send(
        serialize.sync(),
        // Refused at Bind: no such statement.
        ...runStatement('no_such_statement', 'x'),
        // Refused at Execute: no such portal.
        serialize.execute({ portal: 'no_such_portal' }),
        serialize.sync(),
        serialize.query('ROLLBACK'),
      );
      return untilReadyN(c, 5);
    });
    expect(errors(answers[2]).map((e) => e.routine)).toEqual(['ormai.prepared_statement_not_found']);
    expect(errors(answers[3]).map((e) => e.routine)).toEqual(['ormai.portal_not_found']);
    expect(tags(answers.flat()).filter((t) => t.startsWith('INSERT'))).toEqual([]);
    expect(await tenantOrders()).toBe(before);
  });

  test('budget refusals at Execute of portals under those names run nothing', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      for (const name of OWN) c.send(serialize.parse({ name, text: INSERT, types: [] }));
      c.send(serialize.sync());
      for (let i = 0; i < 3; i++) for (const name of OWN) c.send(...runStatement(name, name));
      return untilReadyN(c, 1 + 3 * OWN.length);
    });
    const outcomes = answers.slice(1).map((ms) => tags(ms)[0] ?? errors(ms)[0]?.routine);
    expect(outcomes.filter((o) => o === 'INSERT 0 1')).toHaveLength(3);
    expect(outcomes.filter((o) => o === 'ormai.write_rate_limited')).toHaveLength(3 * OWN.length - 3);
    expect(await tenantOrders()).toBe(before + 3);
  });
});

describe('a Bind PostgreSQL refuses leaves no portal', () => {
  test('Bind in a failed transaction, then Execute of that portal: refused by the proxy, never forwarded; other sessions unharmed', async () => {
    const p = await start();
    const bystander = new Client({ connectionString: p.url() });
    await bystander.connect();
    const before = await tenantOrders();
    try {
      const answers = await withClient(p, async (c) => {
        c.send(
          serialize.query('BEGIN'),
          serialize.query('ROLLBACK TO SAVEPOINT a'),
          parseMessage('', 'SELECT * FROM orders'),
          serialize.bind({ portal: '', statement: '' }),
          serialize.sync(),
          serialize.execute({ portal: '' }),
          serialize.sync(),
          serialize.query('ROLLBACK'),
          serialize.query('SELECT 1 AS alive'),
        );
        return untilReadyN(c, 6);
      });
      expect(errors(answers[1]).map((e) => e.code)).toEqual(['3B001']);
      expect(errors(answers[2]).map((e) => e.code)).toEqual(['25P02']);
      expect(errors(answers[3]).map((e) => [e.code, e.routine])).toEqual([['34000', 'ormai.portal_not_found']]);
      expect(rowsOf(answers[5])).toEqual([['1']]);
      expect((await bystander.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: before }]);
    } finally {
      await bystander.end();
    }
  });

  test('a Bind with a bad parameter leaves no portal for a later Execute', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('i', 'SELECT $1::int AS n'),
        serialize.bind({ portal: 'p', statement: 'i', values: ['nope'] }),
        serialize.sync(),
        serialize.execute({ portal: 'p' }),
        serialize.sync(),
      );
      return untilReadyN(c, 2);
    });
    expect(errors(answers[0]).map((e) => e.code)).toEqual(['22P02']);
    expect(errors(answers[1]).map((e) => e.code)).toEqual(['34000']);
  });

  test('a Close of a name that does not exist succeeds and changes nothing; a Close ahead of a Bind in one batch is seen by it', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('c', 'SELECT 5 AS n'),
        serialize.close({ type: 'S', name: 'no_such' }),
        serialize.close({ type: 'P', name: 'no_such' }),
        serialize.sync(),
        ...runStatement('c'),
        serialize.close({ type: 'S', name: 'c' }),
        ...runStatement('c'),
      );
      return untilReadyN(c, 3);
    });
    expect(answers[0].filter((m) => m.name === 'closeComplete')).toHaveLength(2);
    expect(rowsOf(answers[1])).toEqual([['5']]);
    expect(errors(answers[2]).map((e) => e.code)).toEqual(['26000']);
  });
});

describe('a simple Query replaces the unnamed statement and portal', () => {
  test('a write parsed unnamed does not survive a Query: its later Bind is refused, nothing is written', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('', INSERT),
        serialize.sync(),
        serialize.query('SELECT 1'),
        ...runStatement(''),
      );
      return untilReadyN(c, 3);
    });
    expect(errors(answers[2]).map((e) => e.code)).toEqual(['26000']);
    expect(await tenantOrders()).toBe(before);
  });

  test('a refused Query does the same', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('', 'SELECT 1'),
        serialize.sync(),
        serialize.query('SELECT * FROM pg_authid'),
        ...runStatement(''),
      );
      return untilReadyN(c, 3);
    });
    expect(errors(answers[1]).map((e) => e.code)).not.toEqual([]);
    expect(errors(answers[2]).map((e) => e.code)).toEqual(['26000']);
  });
});

describe("a write's RETURNING is capped like a read (max_rows 2)", () => {
  for (const extended of [false, true]) {
    test(`${extended ? 'extended' : 'simple'} protocol: two rows reach the agent, with a notice; all four are written`, async () => {
      const p = await start();
      const c = new Client({ connectionString: p.url() });
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(n.message ?? ''));
      await c.connect();
      const before = await tenantOrders();
      try {
        const sql = `${R}UPDATE orders SET status = status RETURNING id, status`;
        const result = await c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql);
        expect(result.rows).toHaveLength(2);
        expect(result.rowCount).toBe(before);
        expect(notices.join('\n')).toMatch(/RETURNING truncated to 2 rows/);
        const writes = await statementEvents(p, 1);
        expect(writes[0].rows).toBe(before); // a write's event counts the rows written
      } finally {
        await c.end();
      }
    });
  }

  test('an Execute of the portal again, once it is done: no rows, and no notice of a cut it did not make', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      c.send(parseMessage('', `${R}UPDATE orders SET status = status RETURNING id`), serialize.bind({ portal: 'w', statement: '' }), serialize.execute({ portal: 'w' }), serialize.execute({ portal: 'w' }), serialize.sync());
      const answers = await c.untilReady();
      c.send(serialize.query('ROLLBACK'));
      await c.untilReady();
      return answers;
    });
    const names = answers.map((m) => (m.name === 'commandComplete' ? `complete:${(m as unknown as { text: string }).text}` : m.name));
    const first = names.indexOf(names.find((n) => n.startsWith('complete:'))!);
    expect(names.slice(0, first + 1).filter((n) => n === 'dataRow')).toHaveLength(2);
    expect(names.slice(0, first)).toContain('notice');
    // The second Execute: PostgreSQL's answer for a finished portal, as it is.
    expect(names.slice(first + 1)).toEqual(['complete:UPDATE 0', 'readyForQuery']);
  });
});

describe('a session holds a bounded number of statements and portals', () => {
  const SESSION_LIMITS = { statements: 50, portals: 40 };

  // A statement of about 10 kB text: the agent's and the forwarded text count, about 20 kB.
  const big = (i: number) => `SELECT id FROM orders WHERE status = '${String(i).padStart(4, '0')}${'x'.repeat(10_000)}'`;

  test('past session.max_prepared_size (100 kB of text) a named Parse or PREPARE is refused; a Close makes room; unnamed ones always work', async () => {
    const p = await start(POLICY, { session: { max_prepared_size: '100kB', max_prepared_size_total: '1MB' } });
    await withClient(p, async (c) => {
      c.send(...Array.from({ length: 4 }, (_, i) => parseMessage(`s${i}`, big(i))), serialize.sync());
      expect(errors(await c.untilReady())).toEqual([]);
      // Extended protocol: a named Parse.
      c.send(parseMessage('s4', big(4)), serialize.sync());
      expect(errors(await c.untilReady()).map((e) => [e.code, e.routine])).toEqual([['54000', 'ormai.session_limit_exceeded']]);
      // Simple protocol: SQL PREPARE.
      c.send(serialize.query(`PREPARE s5 AS ${big(5)}`));
      const prepared = errors(await c.untilReady());
      expect(prepared.map((e) => [e.code, e.routine])).toEqual([['54000', 'ormai.session_limit_exceeded']]);
      expect(prepared[0].message).toMatch(/more than 0\.1 MiB/);
      // Unnamed: not held past the next one.
      c.send(parseMessage('', big(6)), ...runStatement(''));
      expect(errors(await c.untilReady())).toEqual([]);
      c.send(serialize.close({ type: 'S', name: 's0' }), serialize.sync());
      await c.untilReady();
      c.send(parseMessage('s4', big(4)), serialize.sync());
      expect(errors(await c.untilReady())).toEqual([]);
    });
  });

  test('a Parse\'d PREPARE counts when it runs: Executes held back behind portals are refused past the bound, not made', async () => {
    const p = await start(POLICY, { session: { max_prepared_size: '100kB', max_prepared_size_total: '1MB' } });
    await withClient(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      // Three unnamed Parses of PREPARE bigN, each bound to a portal (which keeps it: about 20 kB
      // each); no statement bigN exists yet.
      for (let i = 0; i < 3; i++) c.send(parseMessage('', `PREPARE big${i} AS ${big(i)}`), serialize.bind({ portal: `p${i}`, statement: '' }), serialize.sync());
      const bound = await untilReadyN(c, 3);
      expect(bound.flatMap(errors)).toEqual([]);
      // Each PREPARE makes a statement of about 20 kB more when it runs: not all three fit in 100 kB.
      c.send(...Array.from({ length: 3 }, (_, i) => serialize.execute({ portal: `p${i}` })), serialize.sync());
      expect(errors(await c.untilReady()).map((e) => [e.code, e.routine])).toEqual([['54000', 'ormai.session_limit_exceeded']]);
      c.send(serialize.query('ROLLBACK'));
      await c.untilReady();
      // PREPARE is not undone by ROLLBACK: the first is there, the third was never made.
      c.send(serialize.query('EXECUTE big0'), serialize.query('EXECUTE big2'));
      const [ran, missing] = await untilReadyN(c, 2);
      expect(errors(ran)).toEqual([]);
      expect(errors(missing).map((e) => e.code)).toEqual(['26000']);
    });
  });

  test("a held write's portals keep their parameters within the same bound", async () => {
    const p = await start(APPROVAL_POLICY, { session: { max_prepared_size: '100kB', max_prepared_size_total: '1MB' } });
    await withClient(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      c.send(parseMessage('u', `${R}UPDATE orders SET status = 'paid' WHERE id = 1 AND length($1::text) > 0`), serialize.sync());
      expect(errors(await c.untilReady())).toEqual([]);
      const value = 'x'.repeat(30_000);
      for (let i = 0; i < 4; i++) c.send(serialize.bind({ portal: `h${i}`, statement: 'u', values: [value] }), serialize.sync());
      const bound = await untilReadyN(c, 4);
      // 30 kB each: three fit in 100 kB with the statement's text, the fourth is refused.
      expect(bound.map((ms) => errors(ms).map((e) => e.routine))).toEqual([[], [], [], ['ormai.session_limit_exceeded']]);
      c.send(serialize.query('ROLLBACK'));
      await c.untilReady();
      // The transaction's end dropped the portals: there is room again.
      c.send(serialize.query('BEGIN'), serialize.bind({ portal: 'h9', statement: 'u', values: [value] }), serialize.sync(), serialize.query('ROLLBACK'));
      const again = await untilReadyN(c, 3);
      expect(again.flatMap(errors)).toEqual([]);
    });
  });

  test('named portals bound from unnamed statements keep them, and count: past the bound a Bind is refused; the transaction\'s end gives them back', async () => {
    const p = await start(POLICY, { session: { max_prepared_size: '100kB', max_prepared_size_total: '1MB' } });
    await withClient(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      for (let i = 0; i < 5; i++) c.send(parseMessage('', big(i)), serialize.bind({ portal: `q${i}`, statement: '' }), serialize.sync());
      const bound = await untilReadyN(c, 5);
      // About 20 kB each: four fit in 100 kB, the fifth is refused (and fails the transaction).
      expect(bound.map((ms) => errors(ms).map((e) => e.routine))).toEqual([[], [], [], [], ['ormai.session_limit_exceeded']]);
      c.send(serialize.query('ROLLBACK'));
      await c.untilReady();
      c.send(parseMessage('s0', big(0)), serialize.sync());
      expect(errors(await c.untilReady())).toEqual([]);
    });
  });

  test('a name closed and made again in one batch is counted again: Close and Parse of one name cannot grow past the bound', async () => {
    const p = await start(POLICY, { session: { max_prepared_size: '100kB', max_prepared_size_total: '1MB' } });
    await withClient(p, async (c) => {
      c.send(...Array.from({ length: 4 }, (_, i) => parseMessage(`r${i}`, 'SELECT 1')), serialize.sync());
      await c.untilReady();
      for (let i = 0; i < 6; i++) c.send(serialize.close({ type: 'S', name: `r${i % 4}` }), parseMessage(`r${i % 4}`, big(i)), serialize.sync());
      const answers = await untilReadyN(c, 6);
      expect(answers.map((ms) => errors(ms).map((e) => e.routine)).filter((r) => r.length > 0).length).toBeGreaterThan(0);
    });
  });

  test('past session.max_prepared_size_total the sessions together are refused; a session that ends gives its part back', async () => {
    const p = await start(POLICY, { session: { max_prepared_size: '1MB', max_prepared_size_total: '100kB' } });
    const one = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
    try {
      one.send(...Array.from({ length: 4 }, (_, i) => parseMessage(`s${i}`, big(i))), serialize.sync());
      expect(errors(await one.untilReady())).toEqual([]);
      await withClient(p, async (two) => {
        two.send(parseMessage('t0', big(10)), serialize.sync());
        const refused = errors(await two.untilReady());
        expect(refused.map((e) => [e.code, e.routine])).toEqual([['54000', 'ormai.session_limit_exceeded']]);
        expect(refused[0].message).toMatch(/all sessions/);
      });
    } finally {
      one.end();
    }
    for (let i = 0; i < 100 && !one.closed; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    await withClient(p, async (three) => {
      three.send(parseMessage('t0', big(10)), serialize.sync());
      expect(errors(await three.untilReady())).toEqual([]);
    });
  });

  test('past session.max_prepared_statements (50) and max_portals (40) a new named Parse or Bind is refused; closing one makes room; unnamed ones always work', async () => {
    const p = await start(POLICY, { session: { max_prepared_statements: SESSION_LIMITS.statements, max_portals: SESSION_LIMITS.portals } });
    await withClient(p, async (c) => {
      const parses = Array.from({ length: SESSION_LIMITS.statements }, (_, i) => parseMessage(`s${i}`, 'SELECT 1'));
      c.send(...parses, serialize.sync());
      expect(errors(await c.untilReady())).toEqual([]);
      c.send(parseMessage('one_more', 'SELECT 1'), serialize.sync());
      expect(errors(await c.untilReady()).map((e) => [e.code, e.routine])).toEqual([['54000', 'ormai.session_limit_exceeded']]);
      c.send(parseMessage('', 'SELECT 2 AS n'), ...runStatement(''));
      expect(rowsOf(await c.untilReady())).toEqual([['2']]);
      // A Close not yet answered does not make room (the proxy counts what PostgreSQL may still hold).
      c.send(serialize.close({ type: 'S', name: 's0' }), serialize.sync());
      await c.untilReady();
      c.send(parseMessage('one_more', 'SELECT 3 AS n'), serialize.sync(), ...runStatement('one_more'));
      const [parsed, ran] = await untilReadyN(c, 2);
      expect(errors(parsed)).toEqual([]);
      expect(rowsOf(ran)).toEqual([['3']]);
      c.send(serialize.query('BEGIN'));
      for (let i = 0; i < SESSION_LIMITS.portals; i++) c.send(serialize.bind({ portal: `p${i}`, statement: 's1' }));
      c.send(serialize.sync());
      const [, bound] = await untilReadyN(c, 2);
      expect(errors(bound)).toEqual([]);
      c.send(serialize.bind({ portal: 'p_more', statement: 's1' }), serialize.sync(), serialize.query('ROLLBACK'));
      const [more] = await untilReadyN(c, 2);
      expect(errors(more).map((e) => e.routine)).toEqual(['ormai.session_limit_exceeded']);
    });
  });
});

describe('a statement PostgreSQL cannot interrupt is bounded by the proxy (statement_timeout_ms 500, margin 300 ms)', () => {
  // A chain of CTEs that PostgreSQL plans for seconds without checking for interrupts: statement_timeout
  // and a cancel request both wait for the planner.
  const CHAIN = 400;
  let own: TestDatabase;
  beforeAll(async () => {
    own = await createTestDatabase();
  });
  afterAll(async () => {
    // The abandoned backends plan on until they reach an interrupt check; the database can be dropped after.
    for (let i = 0; i < 240; i++) {
      const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [own.name]);
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await own?.drop();
  });
  const sql =
    'WITH ' +
    Array.from({ length: CHAIN }, (_, i) => (i === 0 ? 'c0 AS (SELECT 1 AS x)' : `c${i} AS (SELECT x + 1 AS x FROM c${i - 1})`)).join(', ') +
    ` SELECT * FROM c${CHAIN - 1}`;

  for (const extended of [false, true]) {
    test(`${extended ? 'extended' : 'simple'} protocol: the agent gets 57014 within the deadline, the session ends, a new one works`, async () => {
      // The proxy's own bounds on CTEs (analysis.max_ctes, 100 by default) and on the statement as PostgreSQL
      // expands it (analysis.max_expanded_nodes) would refuse the chain before it runs. A
      // short margin (cancel at 0.8 s, end at 1.1 s) keeps the test well inside the planning time on any machine.
      const p = (proxy = await startTestProxy(own.url, {
        policies: [path.join(FIXTURES, 'deadline-policy.yaml')],
        analysis: { max_ctes: 1000, max_expanded_nodes: 1_000_000_000 },
        session: { deadline_margin_ms: 300 },
      }));
      const c = new Client({ connectionString: p.url() });
      c.on('error', () => undefined);
      await c.connect();
      const err = (await c.query(extended ? ({ text: sql, values: [], queryMode: 'extended' } as never) : sql).then(
        () => undefined,
        (e: Error & { code?: string; routine?: string }) => e,
      )) as (Error & { code?: string; routine?: string }) | undefined;
      await c.end().catch(() => undefined);
      // PostgreSQL alone would answer only once planning is over (seconds), with its own 57014.
      expect([err?.code, err?.routine]).toEqual(['57014', 'ormai.statement_deadline_exceeded']);
      const fresh = new Client({ connectionString: p.url() });
      await fresh.connect();
      try {
        expect((await fresh.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
      } finally {
        await fresh.end();
      }
      // The event is written after the session ended, by the audit trail's own schedule.
      const chained = () => p.auditEvents().filter((e) => e.kind === 'statement' && e.sql?.startsWith('WITH c0'));
      let events = chained();
      for (let i = 0; i < 150 && (events.length === 0 || p.audit.queueDepth > 0); i++) {
        await new Promise((r) => setTimeout(r, 20));
        events = chained();
      }
      expect(events).toHaveLength(1);
      expect(events[0].code === 'statement_deadline_exceeded' || events[0].code === '57014').toBe(true);
    });
  }

  test("a COMMIT the proxy gave up on (it ran past the deadline): the write's outcome is unknown, and no event calls it rolled back", async () => {
    // A deferred trigger that plans the chain at COMMIT: the proxy's own COMMIT of an autocommit write outlives the deadline.
    await own.query(`CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN EXECUTE ${"'" + sql.replace(/'/g, "''") + "'"}; RETURN NULL; END $f$`);
    await own.query('CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()');
    try {
      const p = (proxy = await startTestProxy(own.url, { policies: [path.join(FIXTURES, 'deadline-policy.yaml')], session: { deadline_margin_ms: 300 } }));
      const c = new Client({ connectionString: p.url() });
      c.on('error', () => undefined);
      await c.connect();
      const err = await c.query(`${R}UPDATE orders SET status = status WHERE id = 1`).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      await c.end().catch(() => undefined);
      expect(err).toBeDefined();
      const events = await untilDisconnected(p);
      const write = events.find((e) => e.kind === 'statement' && e.statement_kind === 'write' && e.decision === 'allowed');
      expect(write).toBeDefined();
      expect(events.filter((e) => e.undoes?.includes(write!.id))).toEqual([]);
    } finally {
      await own.query('DROP TRIGGER slow_commit ON orders');
      await own.query('DROP FUNCTION slow_commit()');
    }
  }, 60_000);
});

describe('what drivers send to tidy a session is run, and the session follows it', () => {
  test('DEALLOCATE, DEALLOCATE ALL, CLOSE, CLOSE ALL: later Binds and Executes of those names are refused as PostgreSQL refuses them', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(parseMessage('a', 'SELECT 1 AS n'), parseMessage('b', 'SELECT 2 AS n'), parseMessage('c', 'SELECT 3 AS n'), serialize.sync());
      // A simple Query and an extended Execute of DEALLOCATE, each followed (next batch) by a Bind of the name.
      c.send(serialize.query('DEALLOCATE a'), ...runStatement('a'));
      c.send(parseMessage('', 'DEALLOCATE PREPARE b'), ...runStatement(''), ...runStatement('b'));
      // A name PostgreSQL does not hold: its error, and nothing changes.
      c.send(serialize.query('DEALLOCATE nope'), ...runStatement('c'));
      c.send(serialize.query('DEALLOCATE ALL'), ...runStatement('c'));
      c.send(serialize.query('BEGIN'), parseMessage('d', 'SELECT 4 AS n'), serialize.bind({ portal: 'p', statement: 'd' }), serialize.bind({ portal: 'q', statement: 'd' }), serialize.sync());
      c.send(serialize.query('CLOSE p'), serialize.execute({ portal: 'p' }), serialize.sync());
      c.send(serialize.query('ROLLBACK; BEGIN'), serialize.bind({ portal: 'q', statement: 'd' }), serialize.sync(), serialize.query('CLOSE ALL'), serialize.execute({ portal: 'q' }), serialize.sync());
      c.send(serialize.query('ROLLBACK'));
      return untilReadyN(c, 18);
    });
    const codes = answers.map((ms) => errors(ms).map((e) => e.code).join(',') || tags(ms).join(','));
    expect(codes).toEqual([
      '', // three Parses
      'DEALLOCATE', '26000',
      'DEALLOCATE', '26000', // DEALLOCATE through Parse/Bind/Execute, then b is gone
      '26000', '3', // DEALLOCATE nope fails; c still runs
      'DEALLOCATE ALL', '26000',
      'BEGIN', '', 'CLOSE CURSOR', '34000',
      'ROLLBACK,BEGIN', '', 'CLOSE CURSOR ALL', '34000',
      'ROLLBACK',
    ].map((c) => (c === '3' ? 'SELECT 1' : c)));
  });

  test('DISCARD ALL drops statements and portals, and the policy settings hold after it (they are the session defaults)', async () => {
    const p = await start();
    const c = new Client({ connectionString: p.url() });
    await c.connect();
    try {
      const policyTimeout = (await c.query('SHOW statement_timeout')).rows[0].statement_timeout;
      await c.query({ name: 'kept', text: 'SELECT 1 AS n' });
      await c.query('SET statement_timeout = 50');
      await c.query('DISCARD ALL');
      expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe(policyTimeout);
      await expect(c.query({ name: 'kept', text: 'SELECT 1 AS n' })).rejects.toMatchObject({ code: '26000' });
      await c.query('UNLISTEN *');
    } finally {
      await c.end();
    }
  });

  test('a DEALLOCATE in a failed transaction changes nothing', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(parseMessage('k', 'SELECT 9 AS n'), serialize.sync());
      c.send(serialize.query('BEGIN'), serialize.query('SELECT 1/0'), serialize.query('DEALLOCATE k'), serialize.query('ROLLBACK'), ...runStatement('k'));
      return untilReadyN(c, 6);
    });
    expect(errors(answers[3]).map((e) => e.code)).toEqual(['25P02']);
    expect(rowsOf(answers[5])).toEqual([['9']]);
  });
});

describe('result formats of a write with capture columns (pgx, JDBC)', () => {
  test('a Bind with one format code per RETURNING column runs the write; codes apply to the agent\'s columns', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      const bind = serialize.bind({ statement: 'w' });
      c.send(
        parseMessage('w', `${R}UPDATE orders SET total_cents = total_cents WHERE id = 1 RETURNING id, status`),
        withResultFormats({ portal: '', statement: 'w', paramFormats: [], params: [], raw: bind }, [1, 0]),
        serialize.describe({ type: 'P', name: '' }),
        serialize.execute({}),
        serialize.sync(),
      );
      return untilReadyN(c, 1);
    });
    expect(errors(answers[0])).toEqual([]);
    const description = answers[0].find((m) => m.name === 'rowDescription') as unknown as { fields: Array<{ name: string; format: string }> };
    expect(description.fields.map((f) => [f.name, f.format])).toEqual([['id', 'binary'], ['status', 'text']]);
    const row = answers[0].find((m) => m.name === 'dataRow') as unknown as { fields: unknown[] };
    expect(row.fields).toHaveLength(2);
    expect(tags(answers[0])).toEqual(['UPDATE 1']);
    const [event] = await statementEvents(p, 1);
    expect(event.changes?.rows).toEqual([{ key: { id: '1' }, before: { total_cents: '10000' }, after: { total_cents: '10000' } }]);
  });
});

describe('cursors are portals, and the session follows them too', () => {
  test('a FETCH pipelined behind an unanswered DECLARE waits for it; a cursor run by Execute shares its cap (max_rows 2); FETCH of a bound portal is refused', async () => {
    const p = await start();
    const answers = await withClient(p, async (c) => {
      c.send(
        serialize.query('BEGIN'),
        serialize.query('DECLARE cur CURSOR FOR SELECT id FROM orders ORDER BY id'),
        serialize.query('FETCH 1 FROM cur'),
        serialize.execute({ portal: 'cur' }),
        serialize.sync(),
        parseMessage('s', 'SELECT 1 AS n'),
        serialize.bind({ portal: 'bound', statement: 's' }),
        serialize.sync(),
        serialize.query('FETCH 1 FROM bound'),
        serialize.query('ROLLBACK'),
      );
      return untilReadyN(c, 7);
    });
    expect(rowsOf(answers[2])).toHaveLength(1);
    // The direct Execute of the cursor gets one more row, then the cap (2 over the cursor) cuts the rest.
    expect(rowsOf(answers[3])).toHaveLength(1);
    expect(answers[3].some((m) => m.name === 'notice')).toBe(true);
    expect(errors(answers[5]).map((e) => e.routine)).toEqual(['ormai.statement_not_allowed']);
    // The audit trail names what the Execute of the cursor read: its DECLARE.
    let executed;
    for (let i = 0; i < 100 && !executed; i++) {
      executed = p.auditEvents().find((e) => e.kind === 'statement' && e.protocol === 'extended');
      if (!executed) await new Promise((r) => setTimeout(r, 20));
    }
    expect(executed).toMatchObject({ sql: 'DECLARE cur CURSOR FOR SELECT id FROM orders ORDER BY id', statement_kind: 'read' });
  });
});

describe('a row limit on the Execute of a write without RETURNING (JDBC executeUpdate sends 1)', () => {
  test('the write completes with its tag, not PortalSuspended, and every changed row is captured', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(parseMessage('', `${R}UPDATE orders SET status = status`), serialize.bind({}), serialize.describe({ type: 'P', name: '' }), serialize.execute({ rows: 1 }), serialize.sync());
      return untilReadyN(c, 1);
    });
    expect(answers[0].map((m) => m.name)).toEqual(['parseComplete', 'bindComplete', 'noData', 'commandComplete', 'readyForQuery']);
    expect(tags(answers[0])).toEqual([`UPDATE ${before}`]);
    const [event] = await statementEvents(p, 1);
    expect(event.changes?.rows).toHaveLength(before);
  });

  test('with RETURNING too: the write is audited with every row it inserted, and the agent gets its rows (capped) and the tag', async () => {
    const p = await start();
    const before = await tenantOrders();
    const answers = await withClient(p, async (c) => {
      c.send(
        parseMessage('', `${R}INSERT INTO orders (customer_id, total_cents) SELECT 1, g FROM generate_series(901, 905) g RETURNING total_cents`),
        serialize.bind({}),
        serialize.execute({ rows: 1 }),
        serialize.sync(),
      );
      return untilReadyN(c, 1);
    });
    expect(await tenantOrders()).toBe(before + 5);
    expect(answers[0].map((m) => m.name).filter((n) => n !== 'dataRow' && n !== 'notice')).toEqual(['parseComplete', 'bindComplete', 'commandComplete', 'readyForQuery']);
    expect(rowsOf(answers[0])).toEqual([['901'], ['902']]);
    expect(tags(answers[0])).toEqual(['INSERT 0 5']);
    const [event] = await statementEvents(p, 1);
    expect(event.rows).toBe(5);
    expect(event.changes?.rows).toHaveLength(5);
  });
});

describe('a client that leaves with a write in flight: the write is audited as what really happened', () => {
  for (const how of ['closes its socket', 'sends Terminate'] as const) {
    test(`the client ${how} right after an autocommit INSERT: every row written has its event, every statement one event`, async () => {
      const p = await start(POLICY, { session: { deadline_margin_ms: 2000 } });
      const before = await tenantOrders();
      const runs = 10;
      for (let i = 0; i < runs; i++) {
        const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
        c.send(serialize.query(`/*reason='leaving ${i}'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, ${7000 + i})`));
        if (how === 'sends Terminate') c.send(serialize.end());
        await new Promise((r) => setImmediate(r));
        c.socket.destroy();
      }
      // Each session drains what it sent before it ends: wait for the proxy to have no session left.
      for (let i = 0; i < 100 && p.server.activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 50));
      // Budget: 3 writes a minute per tenant; the rest are refused. Every statement has exactly one event.
      const events = p.auditEvents().filter((e) => e.kind === 'statement' && e.reason?.startsWith('leaving'));
      expect(events).toHaveLength(runs);
      const written = await db.query<{ id: number }>('SELECT id FROM orders WHERE tenant_id = 1 AND total_cents BETWEEN 7000 AND 7099');
      expect(written.length).toBe((await tenantOrders()) - before);
      const audited = new Set(events.flatMap((e) => e.changes?.rows.map((r) => String(r.key.id)) ?? []));
      for (const row of written) expect(audited.has(String(row.id))).toBe(true);
      await db.query('DELETE FROM orders WHERE tenant_id = 1 AND total_cents BETWEEN 7000 AND 7099');
    });
  }

  /** The session's statement events (every reason, and the proxy's own ROLLBACK), once it has ended. */
  async function leave(p: TestProxy, send: (c: RawClient) => Promise<void>) {
    const c = await RawClient.connect(p.port, 'tenant1-agent', 'tenant1-password');
    await send(c);
    c.send(serialize.end());
    await new Promise((r) => setImmediate(r));
    c.socket.destroy();
    for (let i = 0; i < 100 && p.server.activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 50));
    return p.auditEvents().filter((e) => e.kind === 'statement');
  }

  test('Terminate after an extended-protocol COMMIT that no Sync followed: the write committed, and the trail says so', async () => {
    // PostgreSQL commits at the COMMIT's Execute; its answers wait for a Sync or Flush that never comes.
    const p = await start(POLICY, { session: { deadline_margin_ms: 2000 } });
    const events = await leave(p, async (c) => {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      c.send(
        parseMessage('', `/*reason='committed unsynced'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 7201)`),
        serialize.bind({}),
        serialize.execute({}),
        parseMessage('', 'COMMIT'),
        serialize.bind({}),
        serialize.execute({}),
      );
    });
    expect(await db.query('SELECT total_cents FROM orders WHERE tenant_id = 1 AND total_cents = 7201')).toHaveLength(1);
    expect(events.map((e) => [e.sql, e.decision, e.code ?? null])).toEqual([
      ['BEGIN', 'allowed', null],
      [expect.stringContaining('INSERT INTO orders'), 'allowed', null],
      ['COMMIT', 'allowed', null],
    ]);
    await db.query('DELETE FROM orders WHERE total_cents = 7201');
  });

  test('Terminate after an extended-protocol INSERT that no Sync followed: PostgreSQL rolls it back, and the trail says so', async () => {
    const p = await start(POLICY, { session: { deadline_margin_ms: 2000 } });
    const events = await leave(p, async (c) => {
      c.send(parseMessage('', `/*reason='unsynced'*/ INSERT INTO orders (customer_id, total_cents) VALUES (1, 7202)`), serialize.bind({}), serialize.execute({}));
    });
    expect(await db.query('SELECT 1 FROM orders WHERE total_cents = 7202')).toEqual([]);
    expect(events.map((e) => [e.sql, e.decision, e.rows ?? null])).toEqual([
      [expect.stringContaining('INSERT INTO orders'), 'allowed', 1],
      ['ROLLBACK', 'error', 0],
    ]);
    expect(events[1].message).toMatch(/rolled back/);
  });
});
