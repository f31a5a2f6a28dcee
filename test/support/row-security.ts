// A role of the proxy's own with row-level security on the test database's tenant-scoped tables (upstream.read_scope: rls).
import { Client } from 'pg';
import type { ProxyConfig } from '../../src/config/load';
import { rowSecurityScript } from '../../src/policy/tooling/rls';

const PASSWORD = 'rls-test-password';

/** Roles are cluster-wide; several proxies of one test file share theirs, dropped with the last. */
const users = new Map<string, number>();

/** The role for the database of `url`: `ormai_rls_<database>`. */
export function rowSecurityRole(url: string): string {
  return `ormai_rls_${new URL(url).pathname.slice(1)}`.slice(0, 63);
}

/** `url` (a superuser's) with the role's credentials. */
export function roleUrl(url: string): string {
  const u = new URL(url);
  u.username = rowSecurityRole(url);
  u.password = PASSWORD;
  return u.toString();
}

/**
 * Makes the role (not the tables' owner, no BYPASSRLS) with the privileges an agent's statements
 * and the proxy's own tables need, and returns its URL. Tables made later by the test's superuser
 * are granted too (default privileges).
 */
export async function prepareRowSecurityRole(superuserUrl: string): Promise<string> {
  const role = rowSecurityRole(superuserUrl);
  const database = new URL(superuserUrl).pathname.slice(1);
  const c = new Client({ connectionString: superuserUrl });
  await c.connect();
  try {
    const exists = (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount;
    if (!exists) await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${PASSWORD}'`);
    await c.query(`GRANT TEMP, CONNECT ON DATABASE "${database}" TO "${role}"`);
    const schemas = (await c.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'")).rows;
    for (const { name } of schemas) {
      await c.query(`GRANT USAGE, CREATE ON SCHEMA "${name}" TO "${role}"`);
      await c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${name}" TO "${role}"`);
      await c.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "${name}" TO "${role}"`);
      await c.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA "${name}" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${role}"`);
      await c.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA "${name}" GRANT USAGE, SELECT ON SEQUENCES TO "${role}"`);
    }
  } finally {
    await c.end();
  }
  users.set(role, (users.get(role) ?? 0) + 1);
  return roleUrl(superuserUrl);
}

/** Runs `ormai-proxy rls`'s SQL for `config` (whose upstream is the role) as the superuser. */
export async function applyRowSecurity(superuserUrl: string, config: ProxyConfig): Promise<string> {
  const script = await rowSecurityScript(config);
  if (script.blocking) throw new Error(script.blocking);
  const c = new Client({ connectionString: superuserUrl });
  await c.connect();
  try {
    await c.query(script.sql);
  } finally {
    await c.end();
  }
  return script.sql;
}

/** Drops the role once its last proxy is closed (with what it owns and its privileges in the database, if it still exists). */
export async function releaseRowSecurityRole(superuserUrl: string): Promise<void> {
  const role = rowSecurityRole(superuserUrl);
  const left = (users.get(role) ?? 1) - 1;
  if (left > 0) {
    users.set(role, left);
    return;
  }
  users.delete(role);
  const database = new URL(superuserUrl).pathname.slice(1);
  const server = new URL(superuserUrl);
  server.pathname = '/postgres';
  const admin = new Client({ connectionString: server.toString() });
  await admin.connect();
  try {
    const live = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount;
    if (live) {
      const c = new Client({ connectionString: superuserUrl });
      await c.connect();
      try {
        await c.query(`DROP OWNED BY "${role}" CASCADE`);
      } finally {
        await c.end();
      }
    }
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
  } finally {
    await admin.end();
  }
}
