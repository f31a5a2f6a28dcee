// Refusals for statement kinds the proxy does not forward: the statement named as SQL spells it, and what to do instead.
import { ProxyError } from '../errors/catalogue';

type Body = Record<string, unknown>;

/** Node types whose SQL name does not follow from splitting the type name ('CreateStmt' → 'CREATE TABLE'). */
const NAMES: Record<string, string | ((b: Body) => string)> = {
  VariableSetStmt: 'SET',
  VariableShowStmt: 'SHOW',
  TransactionStmt: 'transaction control',
  CreateStmt: 'CREATE TABLE',
  CreateTableAsStmt: (b) => (b.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS'),
  DropStmt: (b) => `DROP ${objectName(b.removeType)}`,
  AlterTableStmt: (b) => `ALTER ${objectName(b.objtype)}`,
  RenameStmt: (b) => `ALTER ${objectName(b.renameType)} RENAME`,
  AlterObjectSchemaStmt: (b) => `ALTER ${objectName(b.objectType)} SET SCHEMA`,
  AlterOwnerStmt: (b) => `ALTER ${objectName(b.objectType)} OWNER`,
  CommentStmt: (b) => `COMMENT ON ${objectName(b.objtype)}`,
  DefineStmt: (b) => `CREATE ${objectName(b.kind)}`,
  CreateFunctionStmt: (b) => (b.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION'),
  GrantStmt: (b) => (b.is_grant ? 'GRANT' : 'REVOKE'),
  GrantRoleStmt: (b) => (b.is_grant ? 'GRANT' : 'REVOKE'),
  VacuumStmt: (b) => (b.is_vacuumcmd ? 'VACUUM' : 'ANALYZE'),
  FetchStmt: (b) => (b.ismove ? 'MOVE' : 'FETCH'),
  ClosePortalStmt: 'CLOSE',
  DeclareCursorStmt: 'DECLARE CURSOR',
  CheckPointStmt: 'CHECKPOINT',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  SecLabelStmt: 'SECURITY LABEL',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  ViewStmt: 'CREATE VIEW',
  IndexStmt: 'CREATE INDEX',
  RuleStmt: 'CREATE RULE',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  AlterDatabaseSetStmt: 'ALTER DATABASE',
  AlterDatabaseRefreshCollStmt: 'ALTER DATABASE',
  AlterRoleSetStmt: 'ALTER ROLE',
  CreateFdwStmt: 'CREATE FOREIGN DATA WRAPPER',
  AlterFdwStmt: 'ALTER FOREIGN DATA WRAPPER',
  CreateForeignServerStmt: 'CREATE SERVER',
  AlterForeignServerStmt: 'ALTER SERVER',
  CreatePLangStmt: 'CREATE LANGUAGE',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  AlterEventTrigStmt: 'ALTER EVENT TRIGGER',
  CreateAmStmt: 'CREATE ACCESS METHOD',
  CreateStatsStmt: 'CREATE STATISTICS',
  AlterStatsStmt: 'ALTER STATISTICS',
  CreateTableSpaceStmt: 'CREATE TABLESPACE',
  DropTableSpaceStmt: 'DROP TABLESPACE',
  AlterTableSpaceOptionsStmt: 'ALTER TABLESPACE',
  AlterTableMoveAllStmt: 'ALTER TABLE ALL IN TABLESPACE',
  AlterTSConfigurationStmt: 'ALTER TEXT SEARCH CONFIGURATION',
  AlterTSDictionaryStmt: 'ALTER TEXT SEARCH DICTIONARY',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  CreateRangeStmt: 'CREATE TYPE',
  AlterEnumStmt: 'ALTER TYPE',
  CreateOpClassStmt: 'CREATE OPERATOR CLASS',
  CreateOpFamilyStmt: 'CREATE OPERATOR FAMILY',
  AlterOpFamilyStmt: 'ALTER OPERATOR FAMILY',
  AlterObjectDependsStmt: 'ALTER ... DEPENDS ON EXTENSION',
  AlterExtensionContentsStmt: 'ALTER EXTENSION',
  ReplicaIdentityStmt: 'ALTER TABLE REPLICA IDENTITY',
  CreateRoleStmt: 'CREATE ROLE',
  PLAssignStmt: 'PL/pgSQL assignment',
};

/** ObjectType keywords whose SQL spelling is not the enum name with spaces. */
const OBJECTS: Record<string, string> = {
  MATVIEW: 'MATERIALIZED VIEW',
  FDW: 'FOREIGN DATA WRAPPER',
  FOREIGN_SERVER: 'SERVER',
  TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  TSPARSER: 'TEXT SEARCH PARSER',
  TSTEMPLATE: 'TEXT SEARCH TEMPLATE',
  STATISTIC_EXT: 'STATISTICS',
  TABCONSTRAINT: 'TABLE CONSTRAINT',
  DOMCONSTRAINT: 'DOMAIN CONSTRAINT',
  OPCLASS: 'OPERATOR CLASS',
  OPFAMILY: 'OPERATOR FAMILY',
  LARGEOBJECT: 'LARGE OBJECT',
  DEFACL: 'DEFAULT PRIVILEGES',
  PARAMETER_ACL: 'PARAMETER',
};

function objectName(type: unknown): string {
  if (typeof type !== 'string' || !type.startsWith('OBJECT_')) return 'OBJECT';
  const bare = type.slice('OBJECT_'.length);
  return OBJECTS[bare] ?? bare.replace(/_/g, ' ');
}

/** 'AlterDefaultPrivilegesStmt' → 'ALTER DEFAULT PRIVILEGES'. */
function fromTypeName(nodeType: string): string {
  return nodeType
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toUpperCase();
}

/** The statement as the agent would name it, e.g. 'DROP TABLE', 'COPY', 'REFRESH MATERIALIZED VIEW'. */
export function statementName(nodeType: string, body: Body): string {
  const name = NAMES[nodeType];
  if (typeof name === 'function') return name(body);
  return name ?? fromTypeName(nodeType);
}

const SCHEMA_HINT =
  'Schema changes, permissions and maintenance are done by the operators, not through the proxy. Work with the existing tables using SELECT (and INSERT, UPDATE, DELETE where the policy allows writes).';

/** What to do instead, for refusals where the catalogue's general hint is not the best advice. */
const HINTS: Record<string, string> = {
  CopyStmt: 'Read rows with SELECT (page through large results with LIMIT and a WHERE clause on the last key seen); bulk COPY in or out is not available.',
  DoStmt: 'Anonymous code blocks are not available; send the individual SELECT, INSERT, UPDATE or DELETE statements instead.',
  CallStmt: 'Procedures are not available; send the individual SELECT, INSERT, UPDATE or DELETE statements instead.',
  DeclareCursorStmt: 'Cursors are not available; page through results with LIMIT and a WHERE clause on the last key seen.',
  FetchStmt: 'Cursors are not available; page through results with LIMIT and a WHERE clause on the last key seen.',
  ClosePortalStmt: 'Cursors are not available; page through results with LIMIT and a WHERE clause on the last key seen.',
  ListenStmt: 'Notifications are not available; poll with a SELECT instead.',
  NotifyStmt: 'Notifications are not available; poll with a SELECT instead.',
  UnlistenStmt: 'Notifications are not available; poll with a SELECT instead.',
  LockStmt: 'Explicit locks are not available; choose a transaction isolation level instead (BEGIN ISOLATION LEVEL SERIALIZABLE).',
  TruncateStmt: 'TRUNCATE is not available; use DELETE with a WHERE clause where the policy allows deletes.',
  MergeStmt: 'MERGE is not supported yet; use INSERT ... ON CONFLICT, or separate UPDATE and INSERT statements.',
  DiscardStmt: 'The session state belongs to the proxy; DISCARD is not needed to query data.',
  LoadStmt: 'Loading server libraries is not available.',
  ConstraintsSetStmt: 'Constraint timing is fixed by the schema; write the rows in an order that satisfies the constraints.',
  AlterSystemStmt: 'Server configuration belongs to the operators.',
  CheckPointStmt: 'Server maintenance belongs to the operators.',
};

const SCHEMA_PREFIXES = ['Create', 'Alter', 'Drop', 'Grant', 'Revoke', 'Rename', 'Comment', 'SecLabel', 'Reassign'];
const MAINTENANCE = new Set(['VacuumStmt', 'ClusterStmt', 'ReindexStmt', 'RefreshMatViewStmt', 'ImportForeignSchemaStmt', 'DefineStmt', 'IndexStmt', 'ViewStmt', 'RuleStmt', 'CompositeTypeStmt', 'ReplicaIdentityStmt']);

function hintFor(nodeType: string): string | undefined {
  if (HINTS[nodeType]) return HINTS[nodeType];
  if (MAINTENANCE.has(nodeType) || SCHEMA_PREFIXES.some((p) => nodeType.startsWith(p))) return SCHEMA_HINT;
  return undefined; // the catalogue's general hint
}

/** The refusal for a statement kind that is never forwarded. */
export function notAllowed(nodeType: string, body: Body, suffix = ' is not allowed'): ProxyError {
  return new ProxyError('statement_not_allowed', {
    message: `${statementName(nodeType, body)}${suffix}`,
    hint: hintFor(nodeType),
  });
}
