// The clients of the compatibility suite: how each one is prepared (compiled) and started.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const DIR = path.join(__dirname, 'clients');
const PY = '/usr/bin/python3'; // Debian's interpreter, for Debian's python3-* packages
const node = (file) => () => [process.execPath, path.join(DIR, file)];
const python = (file) => () => [PY, path.join(DIR, file)];

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.error) return { ok: false, detail: `${cmd}: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, detail: `${cmd} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}` };
  return { ok: true };
}

function debianVersion(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'v4';
}

// The build cache outlives one run (.tmp/ is ignored by git): pgx compiles once.
const GO_ENV = () => ({ GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '', GOCACHE: process.env.GOCACHE || path.join(__dirname, '..', '..', '.tmp', 'compat-gocache'), GOTOOLCHAIN: 'local' });

const clients = [
  { name: 'pg', command: node('pg.js') },
  { name: 'postgres', command: node('postgres.js') },
  { name: 'kysely', command: node('kysely.js') },
  { name: 'drizzle', command: node('drizzle.js') },
  { name: 'knex', command: node('knex.js') },
  { name: 'typeorm', command: node('typeorm.js') },
  { name: 'sequelize', command: node('sequelize.js') },
  { name: 'mcp-postgres', command: node('mcp-postgres.js') },
  { name: 'psql', command: node('psql.js') },
  { name: 'psycopg', command: python('psycopg3.py') },
  { name: 'psycopg2', command: python('psycopg2_client.py') },
  { name: 'asyncpg', command: python('asyncpg_client.py') },
  { name: 'sqlalchemy', command: python('sqlalchemy_client.py') },
  {
    name: 'jdbc',
    prepare: (buildDir) => run('javac', ['-cp', '/usr/share/java/postgresql.jar', '-d', buildDir, path.join(DIR, 'Jdbc.java')]),
    command: (buildDir) => ['java', '-cp', `${buildDir}:/usr/share/java/postgresql.jar`, 'Jdbc'],
  },
  {
    name: 'pgx',
    prepare: (buildDir) => run('go', ['build', '-o', path.join(buildDir, 'pgx-compat'), path.join(DIR, 'pgx.go')], GO_ENV()),
    command: (buildDir) => [path.join(buildDir, 'pgx-compat')],
    env: () => ({ COMPAT_PGX_VERSION: debianVersion('golang-github-jackc-pgx-v4-dev') }),
  },
];

module.exports = { clients };
