// Provides compiled read scopes: loads the live catalog once (single flight), compiles each policy against it.
import type { UpstreamTarget } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from './load';
import { compileScope, type CatalogSnapshot, type ReadScope } from './scope';

export type CatalogLoader = (target: UpstreamTarget, policies: readonly PolicySnapshot[]) => Promise<CatalogSnapshot>;

export class ScopeProvider {
  private loading?: Promise<Map<PolicySnapshot, ReadScope>>;
  private scopes?: Map<PolicySnapshot, ReadScope>;
  /** Bumped on every successful load; part of statement cache keys. */
  version = 0;

  constructor(
    private readonly target: UpstreamTarget,
    private readonly policies: readonly PolicySnapshot[],
    private readonly loader: CatalogLoader,
    private readonly log: Logger,
  ) {}

  /** The scope for a policy; loads the catalog on first use (a failed load is retried next time). */
  async get(policy: PolicySnapshot): Promise<ReadScope> {
    const scopes = this.scopes ?? (await this.load());
    const scope = scopes.get(policy);
    if (!scope) throw new Error(`policy ${policy.name} is not one of the mounted policies`);
    return scope;
  }

  /** Reloads the catalog and recompiles every policy (on policy reload or schema change). */
  refresh(): Promise<Map<PolicySnapshot, ReadScope>> {
    this.scopes = undefined;
    return this.load();
  }

  private load(): Promise<Map<PolicySnapshot, ReadScope>> {
    this.loading ??= (async () => {
      try {
        const catalog = await this.loader(this.target, this.policies);
        const scopes = new Map(this.policies.map((p) => [p, compileScope(p, catalog)] as const));
        this.scopes = scopes;
        this.version++;
        this.log.info({ relations: catalog.relations.size, policies: scopes.size }, 'catalog loaded');
        return scopes;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }
}
