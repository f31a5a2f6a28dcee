// The process's parser instance, a loaded spare, and their replacement: crash or memory growth retires an instance.
import { GrammarError, ParserInstance } from './wasm-parser';

export type RecycleReason = 'failure' | 'memory';

export interface ParserHealth {
  ready: boolean;
  reason?: string;
}

export interface ParserStats {
  /** Instances retired, by reason. */
  recycled: Record<RecycleReason, number>;
  /** Calls refused because no healthy instance was loaded. */
  unavailable: number;
  /** Analyses that ended in a bound or a failure, by error code (see countAnalysisError). */
  analysisErrors: Record<string, number>;
}

/**
 * Linear memory starts at 128 MiB (reserved, touched lazily). An instance that had to grow
 * beyond this keeps the memory for good, so it is replaced after the call that grew it.
 */
const RECYCLE_HEAP_BYTES = 160 * 1024 * 1024;

let active: ParserInstance | undefined;
let spare: ParserInstance | undefined;
let loadingSpare: Promise<void> | undefined;
let loadError: string | undefined;
let first: Promise<void> | undefined;
const stats: ParserStats = { recycled: { failure: 0, memory: 0 }, unavailable: 0, analysisErrors: Object.create(null) as Record<string, number> };

function loadSpare(): Promise<void> {
  loadingSpare ??= ParserInstance.load().then(
    (instance) => {
      loadingSpare = undefined;
      loadError = undefined;
      if (active === undefined) active = instance;
      else spare = instance;
      // Both seats full: nothing more to load until the next retirement.
      if (spare === undefined) void loadSpare();
    },
    (err: unknown) => {
      loadingSpare = undefined;
      loadError = err instanceof Error ? err.message : String(err);
    },
  );
  return loadingSpare;
}

/** Loads the first instance (and a spare behind it); call and await once before the first parse. */
export function initParser(): Promise<void> {
  first ??= ParserInstance.load().then(
    (instance) => {
      active ??= instance;
      void loadSpare();
    },
    (err: unknown) => {
      first = undefined;
      throw err;
    },
  );
  return first;
}

function retire(reason: RecycleReason): void {
  stats.recycled[reason]++;
  active = spare;
  spare = undefined;
  void loadSpare();
}

/**
 * Runs fn on a healthy instance. Returns undefined when none is loaded (the caller refuses the
 * statement); after fn, an instance that broke or grew too large is replaced for the next call.
 */
export function withParser<T>(fn: (p: ParserInstance) => T): T | undefined {
  if (active === undefined || active.broken) {
    if (active?.broken) retire('failure');
    if (active === undefined) {
      stats.unavailable++;
      return undefined;
    }
  }
  const instance = active;
  try {
    return fn(instance);
  } catch (err) {
    if (!(err instanceof GrammarError) && instance.broken && active === instance) retire('failure');
    throw err;
  } finally {
    // Grown, not broken: it keeps serving until a spare is loaded to take its place.
    if (!instance.broken && active === instance && spare !== undefined && instance.heapBytes() > RECYCLE_HEAP_BYTES) retire('memory');
  }
}

/** Bound refusals and failures of analysis, for the metrics (codes come from the catalogue only). */
export function countAnalysisError(code: string): void {
  stats.analysisErrors[code] = (stats.analysisErrors[code] ?? 0) + 1;
}

export function parserStats(): ParserStats {
  return { recycled: { ...stats.recycled }, unavailable: stats.unavailable, analysisErrors: { ...stats.analysisErrors } };
}

/** Resolves once no instance is being loaded (both seats full, or a load failed): for tests that fail instances on purpose. */
export async function parserSettled(): Promise<void> {
  while (loadingSpare) await loadingSpare;
}

/** Not ready while no healthy instance is loaded, with the reason. */
export function parserHealth(): ParserHealth {
  if (first === undefined) return { ready: true };
  if (active !== undefined && !active.broken) return { ready: true };
  return { ready: false, reason: loadError ? `statement parser failed to load: ${loadError}` : 'statement parser is being replaced' };
}
