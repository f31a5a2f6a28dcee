// Table-driven golden cases for the analysis stage: SQL in → forwarded SQL out, or an error code; each under both protocols.
import type { ErrorCode } from '../../../src/errors/catalogue';
import {
  analyze,
  initAnalysis,
  type Analysis,
  type AnalysisContext,
  type StatementKind,
  type WriteTarget,
} from '../../../src/analysis/pipeline';

export interface Golden {
  sql: string;
  /** The forwarded text (the deparsed statements joined with '; '). */
  out?: string;
  /** The refusal's code; exactly one of out / err. */
  err?: ErrorCode;
  /** Kinds of the statements, in order. */
  kinds?: StatementKind[];
  /** Every table written, over all statements. */
  writes?: WriteTarget[];
  /** A fragment the refusal's message must contain (it names the statement kind). */
  message?: string;
  /** Context fields for this case, over the suite's base context. */
  ctx?: Partial<AnalysisContext>;
  /** More than one statement: under the extended protocol the case must be a syntax_error. */
  multi?: boolean;
  /** Audit flags of the first statement ([] = none). */
  flags?: string[];
  /** The row cap of the first statement (null = none). */
  rowLimit?: number | null;
}

const PROTOCOLS: AnalysisContext['protocol'][] = ['simple', 'extended'];

/** A write gate that allows what `allowed` lists as 'op:table' (schema-qualified when given). */
export function gate(...allowed: string[]): (t: WriteTarget) => boolean {
  return (t) => allowed.includes(`${t.op}:${t.schema ? `${t.schema}.` : ''}${t.name}`);
}

export function expectRefused(result: Analysis, code: ErrorCode, message?: string): void {
  if (result.ok) throw new Error(`expected ${code}, got forwarded text: ${result.sql}`);
  expect(result.error.code).toBe(code);
  // Nothing forwardable may come with a refusal.
  expect(result).not.toHaveProperty('sql');
  expect(result).not.toHaveProperty('statements');
  if (message !== undefined) expect(result.error.message).toContain(message);
}

export function expectForwarded(result: Analysis, out: string): asserts result is Extract<Analysis, { ok: true }> {
  if (!result.ok) {
    throw new Error(`expected "${out}", got ${result.error.code}: ${result.error.message} (${result.error.logMessage ?? ''})`);
  }
  expect(result.sql).toBe(out);
}

/** Registers one jest test per case and protocol. */
export function runGolden(cases: Golden[], base: Omit<AnalysisContext, 'protocol'> = {}): void {
  beforeAll(() => initAnalysis());
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test.each(cases.map((c) => [c.sql, c] as const))('%s', (_sql, c) => {
        const result = analyze(c.sql, { ...base, ...c.ctx, protocol });
        if (c.multi && protocol === 'extended') {
          expectRefused(result, 'syntax_error', 'multiple commands');
          return;
        }
        if (c.err !== undefined) {
          expectRefused(result, c.err, c.message);
          return;
        }
        expectForwarded(result, c.out ?? '(out missing)');
        if (c.kinds) expect(result.statements.map((s) => s.kind)).toEqual(c.kinds);
        if (c.writes) expect(result.statements.flatMap((s) => s.writes)).toEqual(c.writes);
        if (c.flags) expect(result.statements[0].flags ?? []).toEqual(c.flags);
        if (c.rowLimit !== undefined) expect(result.statements[0].rowLimit ?? null).toBe(c.rowLimit);
      });
    });
  }
}
