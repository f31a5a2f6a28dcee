// The two protocols every write probe runs under: a plain query string (simple Query) and Parse/Bind/Execute with parameters.
import type { Client } from 'pg';

export type Mode = { protocol: 'simple' | 'extended'; extended: boolean };

export const modes: Mode[] = [
  { protocol: 'simple', extended: false },
  { protocol: 'extended', extended: true },
];

export type PgError = Error & { code?: string; routine?: string; detail?: string; hint?: string };

export interface Outcome {
  rows?: Array<Record<string, unknown>>;
  rowCount?: number | null;
  error?: PgError;
}

/** One statement under the mode: `values` go as Bind parameters (extended only; the simple text carries them inline). */
export async function send(c: Client, mode: Mode, sql: string, values: unknown[] = []): Promise<Outcome> {
  try {
    const r = await c.query(mode.extended ? ({ text: sql, values, queryMode: 'extended' } as never) : sql);
    return { rows: r.rows, rowCount: r.rowCount };
  } catch (error) {
    return { error: error as PgError };
  }
}
