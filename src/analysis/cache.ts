// An LRU of analysed statements, so that a repeated statement costs no parse, rewrite or deparse.
import { LRUCache } from 'lru-cache';
import type { Analysis } from './types';

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
}

/**
 * Keyed by everything an analysis depends on: the compiled scope (policy hash and catalog
 * version, by identity of `scopeKey`), the principal's tenant, the protocol and the text.
 */
export class StatementCache {
  private readonly lru: LRUCache<string, Analysis>;
  hits = 0;
  misses = 0;

  constructor(maxEntries = 10_000, maxBytes = 64 * 1024 * 1024) {
    this.lru = new LRUCache<string, Analysis>({
      max: maxEntries,
      maxSize: maxBytes,
      // The forwarded text dominates an entry's size; the key is counted by the caller's text.
      sizeCalculation: (value, key) => key.length + (value.ok ? value.sql.length * 2 : 64) + 256,
    });
  }

  static key(scopeKey: string, tenantId: string, protocol: string, sql: string): string {
    return `${scopeKey}\u0000${tenantId}\u0000${protocol}\u0000${sql}`;
  }

  get(key: string, compute: () => Analysis): Analysis {
    const hit = this.lru.get(key);
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const value = compute();
    this.lru.set(key, value);
    return value;
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, size: this.lru.size };
  }
}
