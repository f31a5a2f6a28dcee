// Read scopes for the rewriter's golden tests: a hand-made catalog mirroring config/quickstart/schema.sql, and policies loaded from files.
import { PG_CATALOG_TYPES } from '../../fixtures/catalog-types';
import path from 'node:path';
import type { Principal } from '../../../src/auth/principal';
import { buildPolicy, loadPolicyFile, type PolicySnapshot } from '../../../src/policy/load';
import { policySchema, type RawPolicy } from '../../../src/policy/schema';
import { compileScope, type CatalogColumn, type CatalogRelation, type CatalogSnapshot, type ReadScope } from '../../../src/policy/scope';

const root = path.resolve(__dirname, '../../..');
export const QUICKSTART = path.join(root, 'config/quickstart/policy.yaml');
export const WITH_COUNTRIES = path.join(root, 'test/fixtures/policy-rewrite.yaml');

type Col = [name: string, type: string, typeOid: number, notNull: boolean];

function relation(schema: string, name: string, oid: number, cols: Col[] = [], kind = 'r'): CatalogRelation {
  // Like config/quickstart/schema.sql: an id column is a serial.
  const columns: CatalogColumn[] = cols.map(([n, type, typeOid, notNull], i) => ({ name: n, attnum: i + 1, type, typeOid, notNull, ...(n === 'id' ? { generated: true } : {}) }));
  // Like config/quickstart/schema.sql: tables with an id column have it as their primary key.
  return { schema, name, oid, kind, rowEstimate: -1, columns, ...(columns.some((c) => c.name === 'id') ? { primaryKey: ['id'] } : {}) };
}

/** config/quickstart/schema.sql, a global lookup table, an unregistered table, and a few system relations. */
export function quickstartCatalog(): CatalogSnapshot {
  const rels = [
    relation('public', 'customers', 16401, [
      ['id', 'integer', 23, true],
      ['tenant_id', 'integer', 23, true],
      ['name', 'character varying(120)', 1043, true],
      ['email', 'character varying(120)', 1043, true],
      ['phone', 'character varying(40)', 1043, false],
      ['api_secret', 'character varying(64)', 1043, false],
    ]),
    relation('public', 'orders', 16412, [
      ['id', 'integer', 23, true],
      ['tenant_id', 'integer', 23, true],
      ['customer_id', 'integer', 23, true],
      ['total_cents', 'integer', 23, true],
      ['status', 'character varying(20)', 1043, true],
      ['created_at', 'timestamp without time zone', 1114, true],
    ]),
    relation('public', 'countries', 16430, [
      ['code', 'character(2)', 1042, true],
      ['name', 'text', 25, false],
    ]),
    relation('public', 'internal_notes', 16440, [
      ['id', 'integer', 23, true],
      ['body', 'text', 25, false],
    ]),
    relation('pg_catalog', 'pg_class', 1259),
    relation('pg_catalog', 'pg_tables', 12000, [], 'v'),
    relation('pg_catalog', 'pg_stat_activity', 12001, [], 'v'),
    relation('pg_catalog', 'pg_settings', 12002, [], 'v'),
    relation('pg_catalog', 'pg_namespace', 2615),
    relation('pg_catalog', 'pg_attribute', 1249),
    relation('information_schema', 'tables', 13000, [], 'v'),
    relation('information_schema', 'columns', 13001, [], 'v'),
    relation('information_schema', 'schemata', 13002, [], 'v'),
  ];
  return { database: 'app', searchPath: ['public'], relations: new Map(rels.map((r) => [`${r.schema}.${r.name}`, r])), types: PG_CATALOG_TYPES, parameterTypes: new Set() };
}

export function scopeFromFile(file: string): ReadScope {
  return compileScope(loadPolicyFile(file), quickstartCatalog());
}

/** The same catalog with schema.sql's foreign key orders.customer_id → customers(id) (kept out of the other goldens for brevity). */
export function scopeWithForeignKeys(file: string): ReadScope {
  const catalog = quickstartCatalog();
  catalog.relations.get('public.orders')!.foreignKeys = [{ column: 'customer_id', parent: 'public.customers', parentColumn: 'id' }];
  return compileScope(loadPolicyFile(file), catalog);
}

/** A variant of a policy file: the same file with some keys replaced, validated like a loaded file. */
export function scopeVariant(file: string, change: Partial<RawPolicy>): ReadScope {
  const base: PolicySnapshot = loadPolicyFile(file);
  // Write grants name models: a variant with other models keeps none unless it says so.
  const writes = change.models && !change.enable_writes ? { enable_writes: [] } : {};
  return compileScope(buildPolicy(policySchema.parse({ ...base.raw, ...writes, ...change }), file), quickstartCatalog());
}

export function principal(tenantId: string): Principal {
  return { user: 'agent', subject: 'agent', tenantId, roles: [], authMethod: 'password' };
}

/** The masks of the quickstart policy, as they appear inside the derived table. */
export const EMAIL = `CAST(CASE WHEN strpos(email, '@') = 0 THEN '***' ELSE ("left"(email, 1) || '***@') || split_part(email, '@', -1) END AS varchar(120)) AS email`;
export const PHONE = `CAST(CASE WHEN length(phone) <= 4 THEN repeat('*', length(phone)) ELSE ("left"(phone, 2) || repeat('*', length(phone) - 4)) || "right"(phone, 2) END AS varchar(40)) AS phone`;
/** Tenant 1's views of the three registered tables (api_secret absent; countries is global). */
export const CUSTOMERS = `( SELECT id, tenant_id, name, ${EMAIL}, ${PHONE} FROM public.customers WHERE tenant_id = '1'::int OFFSET 0 )`;
export const ORDERS = `( SELECT id, tenant_id, customer_id, total_cents, status, created_at FROM public.orders WHERE tenant_id = '1'::int OFFSET 0 )`;
export const COUNTRIES = '( SELECT code, name FROM public.countries )';
