// Builds the configured approvals store: in memory for one proxy, or a PostgreSQL table shared by every sidecar.
import type { ProxyConfig } from '../config/load';
import type { Logger } from '../log';
import { adminClientConfig } from '../upstream/catalog';
import { MemoryApprovalStore } from './memory-store';
import { PostgresApprovalStore } from './postgres-store';
import type { ApprovalStore } from './types';

/**
 * memory, or postgres reached with the upstream credentials. The postgres table is created
 * here when the database is reachable; when it is not, start-up goes on (as for the catalog)
 * and the first store operation creates it.
 */
export async function createApprovalStore(config: ProxyConfig, log: Logger): Promise<ApprovalStore> {
  const settings = config.raw.approvals;
  if (settings.store === 'memory') return new MemoryApprovalStore();
  const store = new PostgresApprovalStore({
    client: adminClientConfig(config.upstream, 'ormai-proxy approvals'),
    table: settings.table,
    log,
  });
  try {
    await store.init();
  } catch (err) {
    log.warn({ err: (err as Error).message, table: settings.table }, 'approvals table not ready at start-up; retried with the first approval');
  }
  return store;
}
