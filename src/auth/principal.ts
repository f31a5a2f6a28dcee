// The authenticated identity a session acts for. The tenant comes from here, never from SQL.

export interface Principal {
  /** The user name the client connected as (startup `user`). */
  readonly user: string;
  /** Subject of a JWT, or the user name for users-file principals. */
  readonly subject: string;
  /** Tenant identifier as text; the policy types it when it builds predicates. */
  readonly tenantId: string;
  readonly roles: readonly string[];
  /** token: a users-file bearer token; local: `ormai-proxy mcp --user` on the proxy's own machine. */
  readonly authMethod: 'scram-sha-256' | 'password' | 'jwt' | 'token' | 'local';
  /** Set only on the tool door's sessions: the engine's connection this session serves (docs/tools.md). */
  readonly connection?: string;
  /**
   * The database name the client connected with (startup `database`). Catalog answers name this
   * database, never the upstream one, whose name is the proxy's business. Absent: catalog
   * answers give NULL where a database name would go.
   */
  readonly database?: string;
}
