// The capture columns a write appends to RETURNING (analysis/rewrite/capture.ts): cut off what the agent receives, named for the audit record.
import type { CapturePlan } from '../analysis/rewrite/capture';
import type { AuditChanges } from '../audit/event';
import type { BackendFrame } from '../protocol/backend/framer';
import { dataRowValues } from '../protocol/backend/framer';
import * as backend from '../protocol/backend/serializer';

/** Rows captured per statement, at most this many (the audit event says when there were more). */
export const CAPTURE_ROW_LIMIT = 1000;

/** How one statement's result is cut, and what was cut off. */
export interface CaptureSpec {
  /** Columns at the end of each row that belong to the proxy. */
  width: number;
  /** The agent asked for RETURNING: its leading columns are sent; otherwise the result is not sent at all. */
  keep: boolean;
  /** Whether each capture column arrives in binary format (extended protocol result formats). */
  binary: boolean[];
  rows: Array<Array<string | null>>;
  truncated: boolean;
}

export function captureSpec(width: number, keep: boolean, resultFormats: readonly number[] = []): CaptureSpec {
  const binary = Array.from({ length: width }, (_, i) =>
    resultFormats.length === 1 ? resultFormats[0] === 1 : resultFormats.length > 0 ? resultFormats[resultFormats.length - width + i] === 1 : false,
  );
  return { width, keep, binary, rows: [], truncated: false };
}

/** RowDescription without the capture columns; undefined when none of the agent's remain. */
export function cutRowDescription(frame: BackendFrame, spec: CaptureSpec): Buffer | undefined {
  if (!spec.keep) return undefined;
  const raw = frame.raw;
  const count = raw.readUInt16BE(5);
  const kept = count - spec.width;
  if (kept <= 0) return undefined;
  // Each field: cstring name, then 18 bytes (table oid, attnum, type oid, typlen, typmod, format).
  let off = 7;
  for (let i = 0; i < kept; i++) off = raw.indexOf(0, off) + 1 + 18;
  const body = Buffer.concat([Buffer.from([0, 0]), raw.subarray(7, off)]);
  body.writeUInt16BE(kept, 0);
  const out = Buffer.alloc(1 + 4 + body.length);
  out[0] = 0x54; // 'T'
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** Keeps the row's capture values in `spec`; returns the DataRow the agent receives, if any. */
export function cutDataRow(frame: BackendFrame, spec: CaptureSpec): Buffer | undefined {
  const values = dataRowValues(frame);
  const kept = values.length - spec.width;
  keepCaptured(spec, () => values.slice(kept).map((v, i) => (v === null ? null : spec.binary[i] ? `\\x${v.toString('hex')}` : v.toString('utf8'))));
  return spec.keep && kept > 0 ? backend.dataRow(values.slice(0, kept)) : undefined;
}

/** Keeps one row's capture values (text), up to CAPTURE_ROW_LIMIT rows; past that, notes that the capture is partial. */
export function keepCaptured(spec: CaptureSpec, values: () => Array<string | null>): void {
  if (spec.rows.length < CAPTURE_ROW_LIMIT) spec.rows.push(values());
  else spec.truncated = true;
}

/** The captured columns of each changed row, named: key, then before, then after (analysis/rewrite/capture.ts). */
export function changesOf(plan: CapturePlan, captured: CaptureSpec, settings?: Record<string, string>): AuditChanges {
  const rows = captured.rows.map((values) => {
    let i = 0;
    const take = (names: string[]) => Object.fromEntries(names.map((n) => [n, values[i++] ?? null]));
    const key = take(plan.key);
    const before = take(plan.before);
    const after = take(plan.after);
    return { key, ...(plan.before.length ? { before } : {}), ...(plan.after.length ? { after } : {}) };
  });
  return {
    table: plan.table,
    operation: plan.operation,
    ...(plan.tenantColumn ? { tenant_column: plan.tenantColumn } : {}),
    ...(settings ? { settings } : {}),
    rows,
    ...(captured.truncated ? { truncated: true } : {}),
  };
}

/** NoData: what a Describe answers for a statement that returns nothing the agent asked for. */
export function noData(): Buffer {
  return Buffer.from([0x6e, 0, 0, 0, 4]);
}
