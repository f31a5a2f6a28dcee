// One instance of PostgreSQL's parser in WebAssembly, and the holder that replaces a failed instance with a fresh one.
//
// libpg-query's package entry keeps a single module instance for the whole process. Its build is
// an Emscripten factory (wasm/libpg-query.js) that gives a new, independent instance (its own
// linear memory and C stack) on every call, so the proxy owns its instances directly: when a
// call into one ends abnormally (a stack overflow inside the parser leaves the C stack pointer
// and possibly malloc's state wherever the trap hit), that instance is never called again and a
// spare takes its place at once; a new spare loads in the background.
import { readFile } from 'node:fs/promises';
import type { ParseResult, ScanResult } from 'libpg-query';

interface EmscriptenModule {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  lengthBytesUTF8(s: string): number;
  stringToUTF8(s: string, ptr: number, max: number): void;
  UTF8ToString(ptr: number): string;
  getValue(ptr: number, type: 'i32'): number;
  _wasm_parse_query_raw(ptr: number): number;
  _wasm_free_parse_result(ptr: number): void;
  _wasm_scan(ptr: number): number;
  _wasm_normalize_query(ptr: number): number;
  _wasm_free_string(ptr: number): void;
}

/** The WebAssembly JS API as far as this file uses it (the project's TypeScript libs do not declare it). */
type WasmModule = object;
type WasmInstance = object;
const wasm = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule>; instantiate(module: WasmModule, imports: object): Promise<WasmInstance> } }).WebAssembly;

/** Emscripten's hook for instantiating the WebAssembly module itself (the factory's moduleArg.instantiateWasm). */
interface FactoryOptions {
  instantiateWasm(imports: object, receive: (instance: WasmInstance) => void): object;
}

// The package has no "exports" map: its Emscripten factory is reachable by path.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const createModule = require('libpg-query/wasm/libpg-query.js') as (options?: FactoryOptions) => Promise<EmscriptenModule>;

/**
 * The parser's WebAssembly, compiled once for the process. Left to itself the factory compiles
 * the bytes again for every instance (the active one, its spare, each replacement); instances of
 * one WebAssembly.Module share its code, and each keeps its own memory. A replacement then loads
 * without a compile. (The idle bench's RSS did not move: only the active instance runs hot enough
 * for V8 to tier it up, so the spare never held optimised code of its own.)
 */
let compiled: Promise<WasmModule> | undefined;

function compiledModule(): Promise<WasmModule> {
  compiled ??= readFile(require.resolve('libpg-query/wasm/libpg-query.wasm')).then((bytes) => wasm.compile(bytes));
  // A failure is not kept: the next load compiles again.
  compiled.catch(() => (compiled = undefined));
  return compiled;
}

/** A syntax error the grammar reported; `cursorPosition` is 0-based in characters (-1 if none). */
export class GrammarError extends Error {
  constructor(
    message: string,
    readonly cursorPosition: number,
  ) {
    super(message);
    this.name = 'GrammarError';
  }
}

const UTF8 = new TextDecoder();

/**
 * The NUL-terminated UTF-8 string at `ptr`: what Emscripten's UTF8ToString gives for text this
 * long (it decodes with a TextDecoder too), with the terminator found by a native search instead
 * of a loop in JavaScript over the parser's kilobytes of JSON.
 */
function cString(heap: Uint8Array, ptr: number): string {
  const end = heap.indexOf(0, ptr);
  return UTF8.decode(heap.subarray(ptr, end < 0 ? heap.length : end));
}

/** Results the C side reports as text instead of a tree (libpg_query's scan and normalize). */
function isErrorText(text: string): boolean {
  return text.startsWith('syntax error') || text.startsWith('deparse error') || text.startsWith('ERROR');
}

export class ParserInstance {
  /** Set when a call ended other than normally: the instance's memory can no longer be trusted. */
  broken = false;

  private constructor(private readonly m: EmscriptenModule) {}

  static async load(): Promise<ParserInstance> {
    const module = await compiledModule();
    // The factory awaits receive() and nothing else: a failed instantiation rejects through `failed`.
    let failed!: (err: unknown) => void;
    const failure = new Promise<never>((_, reject) => (failed = reject));
    const m = await Promise.race([
      createModule({
        instantiateWasm: (imports, receive) => {
          wasm.instantiate(module, imports).then(receive, failed);
          return {};
        },
      }),
      failure,
    ]);
    return new ParserInstance(m);
  }

  /** Bytes of linear memory; WebAssembly memory grows but never shrinks. */
  heapBytes(): number {
    return this.m.HEAPU8.length;
  }

  parse(sql: string): ParseResult {
    return this.call(sql, (ptr) => {
      const m = this.m;
      const result = m._wasm_parse_query_raw(ptr);
      if (!result) throw new Error('parser: out of memory');
      try {
        // struct { char *tree; char *stderr; PgQueryError *error; }, 4-byte pointers.
        const tree = m.getValue(result, 'i32');
        const error = m.getValue(result + 8, 'i32');
        if (error) {
          // PgQueryError { char *message; char *funcname; char *filename; int lineno; int cursorpos; }
          const messagePtr = m.getValue(error, 'i32');
          const cursor = m.getValue(error + 16, 'i32');
          throw new GrammarError(messagePtr ? m.UTF8ToString(messagePtr) : 'syntax error', cursor > 0 ? cursor - 1 : -1);
        }
        if (!tree) throw new Error('parser: no tree');
        return JSON.parse(cString(m.HEAPU8, tree)) as ParseResult;
      } finally {
        m._wasm_free_parse_result(result);
      }
    });
  }

  scan(sql: string): ScanResult {
    return JSON.parse(this.textCall(sql, (ptr) => this.m._wasm_scan(ptr))) as ScanResult;
  }

  normalize(sql: string): string {
    return this.textCall(sql, (ptr) => this.m._wasm_normalize_query(ptr));
  }

  private textCall(sql: string, fn: (ptr: number) => number): string {
    return this.call(sql, (ptr) => {
      const out = fn(ptr);
      if (!out) throw new Error('parser: out of memory');
      try {
        const text = this.m.UTF8ToString(out);
        if (isErrorText(text)) throw new GrammarError(text, -1);
        return text;
      } finally {
        this.m._wasm_free_string(out);
      }
    });
  }

  /** Copies the text in as a C string, runs fn, frees it; anything but a grammar error breaks the instance. */
  private call<T>(sql: string, fn: (ptr: number) => T): T {
    if (this.broken) throw new Error('parser instance is broken');
    const m = this.m;
    let ptr = 0;
    try {
      const len = m.lengthBytesUTF8(sql) + 1;
      ptr = m._malloc(len);
      if (!ptr) throw new Error('parser: out of memory');
      m.stringToUTF8(sql, ptr, len);
      const value = fn(ptr);
      m._free(ptr);
      return value;
    } catch (err) {
      if (err instanceof GrammarError) {
        m._free(ptr);
        throw err;
      }
      // A trap (stack overflow, out of bounds) or a JS RangeError in the middle of C code: the C
      // stack pointer was not restored and malloc may be half-way through an update.
      this.broken = true;
      throw err;
    }
  }
}
