// The database read directly after a write test: no row of one tenant references a row of another, through any foreign key between tenant-scoped tables.
import type { TestDatabase } from './db';

interface ForeignKey {
  name: string;
  child: string;
  parent: string;
  child_cols: string[];
  parent_cols: string[];
}

/** Foreign keys of the public schema whose child and parent both have the tenant column (orders → customers in the quickstart schema). */
const FOREIGN_KEYS = `
  SELECT c.conname AS name, ch.relname AS child, pa.relname AS parent,
         ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS child_cols,
         ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n) AS parent_cols
  FROM pg_constraint c
  JOIN pg_class ch ON ch.oid = c.conrelid
  JOIN pg_class pa ON pa.oid = c.confrelid
  JOIN pg_namespace ns ON ns.oid = ch.relnamespace
  WHERE c.contype = 'f' AND ns.nspname = 'public'
    AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.conrelid AND attname = $1 AND NOT attisdropped)
    AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.confrelid AND attname = $1 AND NOT attisdropped)
  ORDER BY c.conname`;

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Per foreign key between tenant-scoped tables, the child rows whose tenant differs from the referenced parent's. */
export async function crossTenantReferences(db: TestDatabase, tenantColumn = 'tenant_id'): Promise<Record<string, number>> {
  const keys = await db.query<ForeignKey & Record<string, unknown>>(FOREIGN_KEYS, [tenantColumn]);
  const out: Record<string, number> = {};
  for (const fk of keys) {
    const on = fk.child_cols.map((c, i) => `ch.${q(c)} = pa.${q(fk.parent_cols[i])}`).join(' AND ');
    const [row] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.${q(fk.child)} ch JOIN public.${q(fk.parent)} pa ON ${on} WHERE ch.${q(tenantColumn)} IS DISTINCT FROM pa.${q(tenantColumn)}`,
    );
    out[`${fk.child} → ${fk.parent} (${fk.name})`] = row.n;
  }
  return out;
}

/** Fails unless every such foreign key has no cross-tenant row (and at least one such key exists, so the check checks something). */
export async function expectNoCrossTenantReferences(db: TestDatabase): Promise<void> {
  const counts = await crossTenantReferences(db);
  expect(Object.keys(counts).length).toBeGreaterThan(0);
  expect(counts).toEqual(Object.fromEntries(Object.keys(counts).map((k) => [k, 0])));
}

const watched = new Set<TestDatabase>();

/** Databases checked after every test of the suite that called checkTenantIntegrityAfterEach(). */
export function watchTenantIntegrity(db: TestDatabase): void {
  watched.add(db);
}

export function unwatchTenantIntegrity(db: TestDatabase | undefined): void {
  if (db) watched.delete(db);
}

/** Registers, in the calling suite, an afterEach that checks every watched database. */
export function checkTenantIntegrityAfterEach(): void {
  afterEach(async () => {
    for (const db of watched) await expectNoCrossTenantReferences(db);
  });
}
