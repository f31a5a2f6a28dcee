// The proxy's own tables in the database (approvals, audit): a configured `table` or `schema.table`, checked, then quoted.

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface TableName {
  schema: string;
  table: string;
  /** `"schema"."table"`, safe to splice into SQL. */
  qualified: string;
}

/** Each part a plain identifier; the schema defaults to public. `what` names the table in the error ("audit table"). */
export function ownTableName(name: string, what: string): TableName {
  const parts = name.split('.');
  const [schema, table] = parts.length === 2 ? parts : ['public', parts[0]];
  if (parts.length > 2 || !IDENTIFIER.test(schema) || !IDENTIFIER.test(table)) {
    throw new Error(`${what} must be "table" or "schema.table" made of letters, digits and underscores, not "${name}"`);
  }
  return { schema, table, qualified: `"${schema}"."${table}"` };
}
