// An LRU of analysed statements, so that a repeated statement costs no parse, rewrite or deparse.
import { LRUCache } from 'lru-cache';
import { ShapeCache } from './shapes';
import type { Analysis } from './types';

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
  /** Estimated bytes held by the entries (keys, texts and trees). */
  bytes?: number;
  /** Statements answered from a shape's template (shapes.ts), and the shapes known. */
  shapeHits?: number;
  shapes?: number;
}

/**
 * V8 bytes per retained object of a parse tree, rounded up: a 20,000-term OR list parses into
 * 260,000 objects and keeps ~9.7 MB of heap (37–39 bytes per object measured; trees built by the
 * rewrite share fewer hidden classes).
 */
const BYTES_PER_OBJECT = 64;
/** Entries larger than this share of the cache are not kept: they would push out everything else. */
const MAX_ENTRY_SHARE = 0.25;

/**
 * Bytes of each analysis measured, without its key: a first-seen read is held by the statement
 * cache and by the shape cache (shapes.ts), and is measured once. An analysis is not changed
 * once made, so its size stays true.
 */
const measured = new WeakMap<Analysis, number>();

/**
 * What an entry costs the heap: every object and string reachable from it (the analysed trees,
 * the forwarded text, write plans), plus its key. Counted once per analysis, on insertion.
 */
export function entryBytes(key: string, value: Analysis): number {
  let bytes = measured.get(value);
  if (bytes === undefined) {
    bytes = heapBytes(value);
    measured.set(value, bytes);
  }
  return bytes + key.length * 2;
}

function heapBytes(value: Analysis): number {
  let objects = 0;
  let chars = 0;
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      chars += v.length;
      continue;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    objects++;
    if (Array.isArray(v)) for (const item of v) stack.push(item);
    else for (const k in v) stack.push((v as Record<string, unknown>)[k]);
  }
  return objects * BYTES_PER_OBJECT + chars * 2;
}

/**
 * Keyed by everything an analysis depends on: the compiled scope (policy hash and catalog
 * version, by identity of `scopeKey`), the principal (tenant, user name, database), the protocol and the text.
 */
export class StatementCache {
  private readonly lru: LRUCache<string, Analysis>;
  private readonly maxEntryBytes: number;
  /** Simple-protocol reads that differ from a known one only in their literals (shapes.ts). */
  readonly shapes: ShapeCache;
  hits = 0;
  misses = 0;

  constructor(maxBytes = 64 * 1024 * 1024, maxEntries = 10_000) {
    this.maxEntryBytes = Math.floor(maxBytes * MAX_ENTRY_SHARE);
    this.lru = new LRUCache<string, Analysis>({ max: maxEntries, maxSize: maxBytes });
    this.shapes = new ShapeCache(entryBytes, Math.floor(maxBytes / 4));
  }

  /** `principal`: everything of the principal the analysis reads (tenant, user name, database). */
  static key(scopeKey: string, principal: string, protocol: string, sql: string): string {
    return `${scopeKey}\u0000${principal}\u0000${protocol}\u0000${sql}`;
  }

  /** The entry for `key`, counted as a hit, or undefined (nothing counted). */
  lookup(key: string): Analysis | undefined {
    const hit = this.lru.get(key);
    if (hit !== undefined) this.hits++;
    return hit;
  }

  get(key: string, compute: () => Analysis): Analysis {
    const hit = this.lru.get(key);
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const value = compute();
    const size = entryBytes(key, value);
    if (size <= this.maxEntryBytes) this.lru.set(key, value, { size });
    return value;
  }

  stats(): CacheStats {
    const shapes = this.shapes.stats();
    return { hits: this.hits, misses: this.misses, size: this.lru.size, bytes: this.lru.calculatedSize, shapeHits: shapes.hits, shapes: shapes.shapes };
  }
}
