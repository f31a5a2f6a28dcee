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

/** pg_type.typname of the fixture's column types. */
const UDT_NAMES: Record<number, string> = { 23: 'int4', 25: 'text', 1042: 'bpchar', 1043: 'varchar', 1114: 'timestamp' };

function relation(schema: string, name: string, oid: number, cols: Col[] = [], kind = 'r'): CatalogRelation {
  // Like config/quickstart/schema.sql: an id column is a serial.
  const columns: CatalogColumn[] = cols.map(([n, type, typeOid, notNull], i) => ({
    name: n,
    attnum: i + 1,
    type,
    typeOid,
    notNull,
    ...(n === 'id' ? { generated: true } : {}),
    udtSchema: 'pg_catalog',
    udtName: UDT_NAMES[typeOid],
  }));
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

/** The same catalog with schema.sql's foreign key orders.customer_id → customers(id) (kept out of the other goldens for brevity); `change` replaces keys of the policy. */
export function scopeWithForeignKeys(file: string, change: Partial<RawPolicy> = {}): ReadScope {
  const catalog = quickstartCatalog();
  catalog.relations.get('public.orders')!.foreignKeys = [{ column: 'customer_id', parent: 'public.customers', parentColumn: 'id' }];
  const base = loadPolicyFile(file);
  return compileScope(Object.keys(change).length === 0 ? base : buildPolicy(policySchema.parse({ ...base.raw, ...change }), file), catalog);
}

/** A variant of a policy file: the same file with some keys replaced, validated like a loaded file. */
export function scopeVariant(file: string, change: Partial<RawPolicy>): ReadScope {
  const base: PolicySnapshot = loadPolicyFile(file);
  // Write grants name models: a variant with other models keeps none unless it says so.
  const writes = change.models && !change.enable_writes ? { enable_writes: [] } : {};
  return compileScope(buildPolicy(policySchema.parse({ ...base.raw, ...writes, ...change }), file), quickstartCatalog());
}

export function principal(tenantId: string): Principal {
  return { user: 'agent', subject: 'agent', tenantId, roles: [], authMethod: 'password', database: 'app' };
}

/** The masks of the quickstart policy, as they appear inside the derived table. */
export const EMAIL = `CAST(CASE WHEN strpos(email, '@') = 0 THEN '***' ELSE ("left"(email, 1) || '***@') || split_part(email, '@', -1) END AS varchar(120)) AS email`;
export const PHONE = `CAST(CASE WHEN length(phone) <= 4 THEN repeat('*', length(phone)) ELSE ("left"(phone, 2) || repeat('*', length(phone) - 4)) || "right"(phone, 2) END AS varchar(40)) AS phone`;
/** Tenant 1's views of the three registered tables (api_secret absent; countries is global). */
export const CUSTOMERS = `( SELECT id, tenant_id, name, ${EMAIL}, ${PHONE} FROM public.customers WHERE tenant_id = '1'::int OFFSET 0 )`;
export const ORDERS = `( SELECT id, tenant_id, customer_id, total_cents, status, created_at FROM public.orders WHERE tenant_id = '1'::int OFFSET 0 )`;
export const COUNTRIES = '( SELECT code, name FROM public.countries )';

/** information_schema.tables' standard columns, in PostgreSQL's order. */
export const INFO_TABLE_NAMES =
  'table_catalog, table_schema, table_name, table_type, self_referencing_column_name, reference_generation, user_defined_type_catalog, user_defined_type_schema, user_defined_type_name, is_insertable_into, is_typed, commit_action';

/** One row of information_schema.tables as the rewrite prints it (a base table of database app). */
export function infoTableRow(schema: string, name: string): string {
  return `('app', '${schema}', '${name}', 'BASE TABLE', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, 'YES', 'NO', NULL::text)`;
}

/** information_schema.columns' standard columns, in PostgreSQL's order, and the proxy's ormai_mask. */
export const INFO_COLUMN_NAMES = [
  'table_catalog, table_schema, table_name, column_name, ordinal_position, column_default, is_nullable, data_type',
  'character_maximum_length, character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale, datetime_precision',
  'interval_type, interval_precision, character_set_catalog, character_set_schema, character_set_name, collation_catalog',
  'collation_schema, collation_name, domain_catalog, domain_schema, domain_name, udt_catalog, udt_schema, udt_name, scope_catalog',
  'scope_schema, scope_name, maximum_cardinality, dtd_identifier, is_self_referencing, is_identity, identity_generation, identity_start',
  'identity_increment, identity_maximum, identity_minimum, identity_cycle, is_generated, generation_expression, is_updatable, ormai_mask',
].join(', ');

const T = 'NULL::text';
const I = 'NULL::int';
const lit = (v: string | number | undefined, typed: string): string => (v === undefined ? typed : typeof v === 'number' ? String(v) : `'${v}'`);

/** One row of information_schema.columns as the rewrite prints it, for the fixture's column types. */
export function infoColumnRow(table: string, column: string, pos: number, nullable: boolean, type: string, mask?: string): string {
  const facts: Record<string, { data: string; udt: string; max?: number; octets?: number; prec?: number; radix?: number; scale?: number; dt?: number }> = {
    integer: { data: 'integer', udt: 'int4', prec: 32, radix: 2, scale: 0 },
    text: { data: 'text', udt: 'text', octets: 1073741824 },
    'character(2)': { data: 'character', udt: 'bpchar', max: 2, octets: 8 },
    'character varying(20)': { data: 'character varying', udt: 'varchar', max: 20, octets: 80 },
    'character varying(40)': { data: 'character varying', udt: 'varchar', max: 40, octets: 160 },
    'character varying(120)': { data: 'character varying', udt: 'varchar', max: 120, octets: 480 },
    'timestamp without time zone': { data: 'timestamp without time zone', udt: 'timestamp', dt: 6 },
  };
  const f = facts[type];
  return `(${[
    "'app'", "'public'", `'${table}'`, `'${column}'`, pos, T, nullable ? "'YES'" : "'NO'", `'${f.data}'`,
    lit(f.max, I), lit(f.octets, I), lit(f.prec, I), lit(f.radix, I), lit(f.scale, I), lit(f.dt, I), T, I,
    T, T, T, T, T, T, T, T, T, "'app'", "'pg_catalog'", `'${f.udt}'`, T, T, T, I, `'${pos}'`, "'NO'", "'NO'", T, T, T, T, T, T, "'NEVER'", T, "'YES'",
    lit(mask, T),
  ].join(', ')})`;
}
