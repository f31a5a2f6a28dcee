// The client of the first-seen scenario (bench/first-seen.js), in a process of its own so that the
// bench process's CPU over a pass is the proxy's. One connection per pass, the simple protocol
// (the pg driver's query(text) without values), one statement at a time; per statement its latency.
const { Client } = require('pg');

let client;
let statements;

async function handle(m) {
  if (m.type === 'open') {
    // A pass: connect (outside the measured window), then wait for 'go'.
    client = new Client({ connectionString: m.url });
    client.on('error', () => undefined);
    await client.connect();
    statements = m.statements;
    process.send({ type: 'ready' });
  } else if (m.type === 'go') {
    const times = new Float64Array(statements.length);
    let rows = 0;
    const errors = [];
    const started = process.hrtime.bigint();
    for (let i = 0; i < statements.length; i++) {
      const t = process.hrtime.bigint();
      try {
        const r = await client.query(statements[i]);
        rows += r.rowCount ?? r.rows.length;
      } catch (err) {
        errors.push({ index: i, message: err.message });
      }
      times[i] = Number(process.hrtime.bigint() - t) / 1e3;
    }
    const wallUs = Number(process.hrtime.bigint() - started) / 1e3;
    process.send({ type: 'done', times: Array.from(times), rows, errors: errors.slice(0, 20), errorCount: errors.length, wallUs });
  } else if (m.type === 'close') {
    await client?.end().catch(() => undefined);
    client = undefined;
    process.send({ type: 'closed' });
  }
}

process.on('message', (m) => {
  handle(m).catch((err) => {
    process.send({ type: 'failed', message: err.stack || err.message });
  });
});
process.on('disconnect', () => {
  void (client?.end().catch(() => undefined) ?? Promise.resolve()).finally(() => process.exit(0));
});
process.send({ type: 'started' });
