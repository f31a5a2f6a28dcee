// How V8 compiles the parser's WebAssembly: on its baseline compiler only, unless the environment says otherwise.
import { setFlagsFromString } from 'node:v8';

/** Set to 1, V8 keeps its default: the parser's hot functions are recompiled by its optimising compiler. */
export const WASM_TIERUP_ENV = 'ORMAI_WASM_TIERUP';

/**
 * Keeps the parser's WebAssembly on Liftoff, V8's baseline compiler (`--liftoff-only`).
 *
 * Left to V8's dynamic tiering, the grammar's hot functions are recompiled by TurboFan once a
 * process has parsed a few hundred statements, and the process keeps 60–130 MB more RSS for good
 * (`npm run bench idle`, 1,000 idle sessions: 200–258 MB tiered, 141–150 MB on Liftoff). What
 * Liftoff costs is parse speed, paid only by a statement neither cache knows: the `firstseen`
 * scenario's 200-character statements took 1,561–1,572 µs of proxy CPU against 1,454–1,516 µs
 * (5–8%), and pgbench's cached and shape-cached paths did not move (see README, *Benchmarks*).
 *
 * V8 reads the flag when it compiles a module, so this must run before the parser is first
 * loaded: the command line calls it before anything else. `ORMAI_WASM_TIERUP=1` opts out.
 * Returns whether the flag was set.
 */
export function keepParserOnBaselineCompiler(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env[WASM_TIERUP_ENV] === '1') return false;
  setFlagsFromString('--liftoff-only');
  return true;
}
