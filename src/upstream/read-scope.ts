// Can the upstream role make the sessions' barrier views (upstream.read_scope: barrier_views)? Asked once at start-up.
import type { UpstreamTarget } from '../config/load';
import { adminClient } from './catalog';

/**
 * Why sessions could not make their security-barrier views in pg_temp, or undefined when they
 * can: the role needs TEMP on the database, and the server must accept writes (a hot standby
 * refuses every CREATE, temporary ones included). Throws when the database cannot be reached.
 */
export async function barrierViewsRefusal(target: UpstreamTarget): Promise<string | undefined> {
  const client = adminClient(target, 'ormai-proxy start-up');
  await client.connect();
  try {
    const { rows } = await client.query<{ role: string; db: string; temp: boolean; replica: boolean }>(
      "SELECT current_user AS role, current_database() AS db, has_database_privilege(current_database(), 'TEMP') AS temp, pg_is_in_recovery() AS replica",
    );
    const r = rows[0];
    if (r.replica) return `the upstream database "${r.db}" is a hot standby, where no temporary view can be made`;
    if (!r.temp) return `the upstream role "${r.role}" may not create temporary objects in database "${r.db}" (GRANT TEMP ON DATABASE "${r.db}" TO "${r.role}")`;
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}
