#!/usr/bin/env bash
# Installs the clients of the compatibility suite (test/compat): Debian packages for the Python,
# Java, Go and psql clients, npm devDependencies for the Node ones. Idempotent: a quick no-op
# when everything is present.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
have_py() { /usr/bin/python3 -c "import $1" >/dev/null 2>&1; }
have_py psycopg || missing+=(python3-psycopg)
have_py psycopg2 || missing+=(python3-psycopg2)
have_py asyncpg || missing+=(python3-asyncpg)
have_py sqlalchemy || missing+=(python3-sqlalchemy)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/jackc/pgx/v4 ] || missing+=(golang-github-jackc-pgx-v4-dev)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)

if [ ${#missing[@]} -gt 0 ]; then
  echo "compat: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for mod in kysely drizzle-orm drizzle-kit knex typeorm sequelize @modelcontextprotocol/server-postgres pg postgres pg-cursor pg-query-stream; do
  if [ ! -f "node_modules/$mod/package.json" ]; then
    echo "compat: node_modules incomplete ($mod), running npm ci"
    npm ci --no-audit --no-fund
    break
  fi
done
echo "compat: clients installed"
