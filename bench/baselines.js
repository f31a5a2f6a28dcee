// What the proxy is compared with besides direct PostgreSQL: pgbouncer in session mode (a mature C
// pooler, installed from Debian when missing and the bench runs as root) and a zero-work Node
// pass-through (a socket piped to the server: the floor for any proxy written in Node).
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { freePort } = require('../dist/demo/embedded');

/** A TCP pass-through to host:port in this process. */
async function startPassThrough(host, port) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function pgbouncerBinary() {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) if (fs.existsSync(p)) return p;
  const which = spawnSync('which', ['pgbouncer'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

/** pgbouncer's path, installing the Debian package first when missing and allowed (root with apt-get). */
function ensurePgbouncer(log) {
  let bin = pgbouncerBinary();
  if (bin) return bin;
  if (process.getuid?.() === 0 && spawnSync('which', ['apt-get']).status === 0) {
    log('bench: installing pgbouncer (apt-get)');
    spawnSync('apt-get', ['install', '-y', '-q', 'pgbouncer'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    bin = pgbouncerBinary();
  }
  return bin;
}

/**
 * pgbouncer in session mode in front of `url` (its database only), trusting local clients; its
 * CPU time is read from /proc. Undefined when pgbouncer is not available.
 */
async function startPgbouncer(url, log) {
  const bin = ensurePgbouncer(log);
  if (!bin) return undefined;
  const u = new URL(url);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ormai-pgbouncer-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const db = decodeURIComponent(u.pathname.slice(1));
  const user = decodeURIComponent(u.username || 'postgres');
  const password = u.password ? ` password=${decodeURIComponent(u.password)}` : '';
  fs.writeFileSync(path.join(dir, 'users.txt'), `"${user}" ""\n`);
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `${db} = host=${u.hostname} port=${u.port || 5432} dbname=${db} user=${user}${password}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'pool_mode = session',
      'max_client_conn = 200',
      'default_pool_size = 50',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  // pgbouncer refuses to run as root.
  const args = process.getuid?.() === 0 ? ['-u', 'nobody', ini] : [ini];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null) {
      log(`bench: pgbouncer did not start: ${stderr.trim().split('\n').pop()}`);
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${db}`,
    /** CPU seconds the pgbouncer process has used so far. */
    cpuSeconds: () => {
      try {
        const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100;
      } catch {
        return NaN;
      }
    },
    close: async () => {
      child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startPassThrough, startPgbouncer };
