// Holds the live policy snapshot: the mounted policies compiled against the catalog, swapped whole on reload.
import type { UpstreamTarget } from '../config/load';
import type { Logger } from '../log';
import type { PolicySnapshot } from './load';
import { compileScope, type CatalogSnapshot, type ReadScope, type RowSecurityFacts } from './scope';
import { rowSecurityProblems } from './row-security';

export type CatalogLoader = (target: UpstreamTarget, policies: readonly PolicySnapshot[]) => Promise<CatalogSnapshot>;

/** Reads the row-level security of some relations now (upstream/catalog.ts loadRowSecurity). */
export type RowSecurityReader = (
  target: UpstreamTarget,
  oids: number[],
) => Promise<{ tables: ReadonlyMap<number, RowSecurityFacts>; roleBypassesRowSecurity?: string }>;

/** One policy as a statement runs under it. */
export interface PolicyView {
  readonly policy: PolicySnapshot;
  readonly scope: ReadScope;
  /** Identifies the compiled scope in cache keys (policy hash and catalog version). */
  readonly scopeKey: string;
}

/** One successful load: replaced as a whole, so a reader never sees new policies with an old catalog. */
interface Compiled {
  readonly policies: readonly PolicySnapshot[];
  readonly views: ReadonlyMap<string, PolicyView>;
}

export class ScopeProvider {
  private loading?: Promise<Compiled>;
  private compiled?: Compiled;
  /** The policies sessions select from; replaced only together with their compiled scopes. */
  private mounted: readonly PolicySnapshot[];
  /** Bumped on every successful load; part of statement cache keys. */
  version = 0;

  private watcher?: NodeJS.Timeout;

  constructor(
    private readonly target: UpstreamTarget,
    policies: readonly PolicySnapshot[],
    private readonly loader: CatalogLoader,
    private readonly log: Logger,
    private readonly rowSecurityReader?: RowSecurityReader,
  ) {
    this.mounted = policies;
  }

  /**
   * Compares the row-level security of the registered tables with what the catalog was compiled
   * from, and loads the catalog again when it changed (a policy dropped, altered or added, row-level
   * security turned off, the role given BYPASSRLS): scope.ts then decides each table's form anew,
   * so a table whose policy is gone reads through a security-barrier view from the next statement.
   * True when it reloaded.
   */
  async checkRowSecurity(): Promise<boolean> {
    const compiled = this.compiled;
    const catalog = compiled?.views.values().next().value?.scope.catalog;
    if (!compiled || !catalog || !this.rowSecurityReader || this.loading) return false;
    const relations = [...catalog.relations.values()].filter((r) => r.rowSecurity !== undefined);
    const now = await this.rowSecurityReader(this.target, relations.map((r) => r.oid));
    const same =
      now.roleBypassesRowSecurity === catalog.roleBypassesRowSecurity && relations.every((r) => JSON.stringify(now.tables.get(r.oid)) === JSON.stringify(r.rowSecurity));
    if (same || this.compiled !== compiled) return false;
    this.log.warn('row-level security of a registered table changed; loading the catalog again');
    await this.refresh();
    return true;
  }

  /** Runs checkRowSecurity every `intervalMs` until stopWatching(); a failed check is logged and tried again at the next tick. */
  watchRowSecurity(intervalMs: number): void {
    this.stopWatching();
    this.watcher = setInterval(() => {
      this.checkRowSecurity().catch((err: Error) => this.log.warn({ err: err.message }, 'row-level security check failed'));
    }, intervalMs);
    this.watcher.unref();
  }

  stopWatching(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = undefined;
  }

  /** The policies in force now (the start-up ones until a reload compiles others). */
  get policies(): readonly PolicySnapshot[] {
    return this.mounted;
  }

  /**
   * The current compiled version of the policy named like `policy`; loads the catalog on first
   * use (a failed load is retried next time). Throws when no mounted policy has that name.
   */
  async get(policy: PolicySnapshot): Promise<PolicyView> {
    const compiled = this.compiled ?? (await (this.loading ?? this.load(this.mounted)));
    const view = compiled.views.get(policy.name);
    if (!view) throw new Error(`policy ${policy.name} is not one of the mounted policies`);
    return view;
  }

  /** The policy of this name as of now, without I/O; undefined once a reload removed it. */
  current(name: string): PolicyView | undefined {
    return this.compiled?.views.get(name);
  }

  /**
   * Reloads the catalog and compiles `policies` (default: the mounted ones) against it. Only a
   * complete success replaces what sessions see; on any error the last good snapshot stays.
   */
  refresh(policies: readonly PolicySnapshot[] = this.mounted): Promise<ReadonlyMap<string, PolicyView>> {
    return this.load(policies).then((c) => c.views);
  }

  /** Loads run one after another: a refresh with new policies never races a load of the old ones. */
  private load(policies: readonly PolicySnapshot[]): Promise<Compiled> {
    const previous = this.loading;
    const run = (async () => {
      if (previous) await previous.catch(() => undefined);
      const catalog = await this.loader(this.target, policies);
      const scopes = policies.map((p) => [p, compileScope(p, catalog)] as const);
      const version = this.version + 1;
      const views = new Map(scopes.map(([p, scope]) => [p.name, Object.freeze({ policy: p, scope, scopeKey: `${p.hash}:${version}` })] as const));
      const compiled: Compiled = { policies, views };
      this.version = version;
      this.compiled = compiled;
      this.mounted = policies;
      this.log.info({ relations: catalog.relations.size, policies: views.size }, 'catalog loaded');
      if (this.target.readScope === 'rls') {
        // Start-up refuses this; after a reload or a change in the database, each table without
        // its policy reads through a security-barrier view (scope.ts decides per table), so say which.
        const problems = rowSecurityProblems(scopes.map(([, scope]) => scope));
        if (problems.length > 0) this.log.warn({ problems }, 'row-level security does not fence every tenant-scoped table; those read through security-barrier views');
      }
      return compiled;
    })();
    const tracked: Promise<Compiled> = run.finally(() => {
      if (this.loading === tracked) this.loading = undefined;
    });
    this.loading = tracked;
    return tracked;
  }
}
