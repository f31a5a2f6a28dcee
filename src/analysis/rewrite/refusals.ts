// Refusals of the read rewrite: relations the agent may not see, and forms whose meaning would change under the rewrite.
import type { RangeVar } from '@pgsql/types';
import { ProxyError } from '../../errors/catalogue';

/** The relation's name as the agent wrote it (after case folding), the way PostgreSQL prints it in errors. */
export function writtenName(rv: RangeVar): string {
  return [rv.catalogname, rv.schemaname, rv.relname].filter((p) => p !== undefined).join('.');
}

/**
 * PostgreSQL's own words for a missing relation, for registered-but-hidden and nonexistent
 * tables alike: the agent cannot tell them apart, and no hint names another table.
 */
export function modelNotAllowed(rv: RangeVar): ProxyError {
  return new ProxyError('model_not_allowed', { message: `relation "${writtenName(rv)}" does not exist` });
}

export function catalogNotAllowed(rv: RangeVar): ProxyError {
  return new ProxyError('catalog_not_allowed', { message: `system catalog "${writtenName(rv)}" is not available` });
}

export function columnAliasesRefused(rv: RangeVar): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: `column aliases on "${writtenName(rv)}" are not supported`,
    hint: `Drop the column alias list after the table alias (write ${rv.alias?.aliasname ?? 'alias'} instead of ${rv.alias?.aliasname ?? 'alias'}(...)) and name columns in the SELECT list with AS.`,
  });
}

export function tableSampleRefused(rv: RangeVar): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: `TABLESAMPLE on "${writtenName(rv)}" is not supported`,
    hint: 'Drop TABLESAMPLE; to look at a few rows use ORDER BY random() LIMIT n, or just LIMIT n.',
  });
}

export function databaseQualifiedRefused(rv: RangeVar): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: `database-qualified name "${writtenName(rv)}" is not supported`,
    hint: 'Name tables as table or schema.table.',
  });
}

export function schemaQualifiedColumnRefused(): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: 'column references qualified with a schema (schema.table.column) are not supported',
    hint: 'Qualify columns with the table name or an alias only: FROM public.customers c ... c.id (or customers.id).',
  });
}

/** A tree too deep to walk: refused like any other statement the proxy cannot check. */
export function tooDeep(): ProxyError {
  return new ProxyError('statement_not_understood', {
    message: 'the statement is nested too deeply to be checked',
    logMessage: 'rewrite: stack exhausted while walking the tree',
  });
}
