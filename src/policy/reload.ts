// Hot reload of the policy and users files: watches their directories, polls as a fallback, swaps in only what is valid.
//
// A Kubernetes ConfigMap update never rewrites a mounted file: it writes a new timestamped
// directory and swaps the `..data` symlink, so the file's own inode never changes. Watching
// the directory sees the swap; inotify still misses some swaps (and some volumes give no
// events at all), hence the poll. Either trigger only re-reads the files by path and
// compares content hashes: what changed is decided by content, never by the event.
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { parseUsersText, type UsersSnapshot } from '../auth/users';
import type { Logger } from '../log';
import { parsePolicyText, type PolicySnapshot } from './load';
import type { ScopeProvider } from './provider';
import { PolicyCatalogError } from './scope';

export type ReloadOutcome = 'unchanged' | 'reloaded' | 'failed';

export interface ReloadReport {
  policies: ReloadOutcome;
  users: ReloadOutcome;
}

export interface HotReloadOptions {
  /** Absolute paths, in the order the configuration lists them (selection order matters). */
  policyFiles: readonly string[];
  usersFile?: string | undefined;
  /** Holds the live policies; a reload compiles the new ones against a fresh catalog before they show. */
  scopes: ScopeProvider;
  /** Receives each valid new users file; new logins authenticate against it. */
  onUsers: (users: UsersSnapshot) => void;
  metrics?: { reload(ok: boolean): void } | undefined;
  log: Logger;
  /** Events come in bursts (a swap is several renames): one check this long after the last. */
  debounceMs?: number;
  /** 0 turns polling off. */
  pollMs?: number;
  /** false: no fs.watch (polling and explicit reloads only). */
  watch?: boolean;
}

/** What is known of one group of files, by content digest. */
interface FileState {
  /** The content in force. */
  applied?: string;
  /** Content found invalid: not tried again until it changes (or a reload is asked for explicitly). */
  refused?: string;
  /** Content that could not be applied for a reason outside the files (the database): retried on each check. */
  failing?: string;
}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_POLL_MS = 5000;
const UNCHANGED: ReloadReport = { policies: 'unchanged', users: 'unchanged' };

class InvalidFiles extends Error {}

export class HotReload {
  private readonly policies: FileState = {};
  private readonly users: FileState = {};
  private readonly watchers: FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
  /** Checks run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  /** A trigger arrived while a check ran: check once more afterwards. */
  private dirty = false;
  private closed = false;

  constructor(private readonly options: HotReloadOptions) {
    // The users file was read at start-up just before this; the policies are compared by their content hash on the first check.
    const users = options.usersFile ? readText(options.usersFile) : undefined;
    if (users !== undefined) this.users.applied = sha256([users]);
  }

  /** Starts watching and polling; resolves after the first check, which runs at once (a file may have changed since start-up). */
  start(): Promise<ReloadReport> {
    const { watch: useWatch = true, pollMs = DEFAULT_POLL_MS, log } = this.options;
    if (useWatch) {
      const dirs = new Set([...this.options.policyFiles, ...(this.options.usersFile ? [this.options.usersFile] : [])].map((f) => path.dirname(f)));
      for (const dir of dirs) {
        try {
          // Every event in the directory counts: a ConfigMap swap names `..data`, not the file.
          const watcher = watch(dir, { persistent: false }, () => this.schedule());
          watcher.on('error', (err) => log.warn({ dir, err: err.message }, 'watching a config directory failed; polling continues'));
          this.watchers.push(watcher);
        } catch (err) {
          log.warn({ dir, err: (err as Error).message }, 'cannot watch a config directory; polling continues');
        }
      }
    }
    if (pollMs > 0) {
      this.poller = setInterval(() => this.check(), pollMs);
      this.poller.unref();
    }
    return this.enqueue(false);
  }

  /** Re-reads every file now (SIGHUP, tests): policies are recompiled against a fresh catalog even when unchanged. */
  reload(): Promise<ReloadReport> {
    return this.enqueue(true);
  }

  /** Stops watching; waits for a reload in progress (it may hold a catalog connection). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.poller);
    for (const w of this.watchers.splice(0)) w.close();
    await this.queue;
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    this.timer.unref();
  }

  private check(): void {
    if (this.queued > 0) this.dirty = true;
    else void this.enqueue(false);
  }

  private enqueue(force: boolean): Promise<ReloadReport> {
    this.queued++;
    const run = this.queue
      .then(() => (this.closed ? UNCHANGED : this.run(force)))
      .finally(() => {
        this.queued--;
        if (this.queued === 0 && this.dirty && !this.closed) {
          this.dirty = false;
          this.check();
        }
      });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(force: boolean): Promise<ReloadReport> {
    return { users: this.checkUsers(force), policies: await this.checkPolicies(force) };
  }

  private checkUsers(force: boolean): ReloadOutcome {
    const file = this.options.usersFile;
    if (!file) return 'unchanged';
    const text = readText(file);
    const digest = text === undefined ? `unreadable:${file}` : sha256([text]);
    if (digest === this.users.applied || (!force && digest === this.users.refused)) return 'unchanged';
    try {
      if (text === undefined) throw new InvalidFiles(`cannot read users file ${file}`);
      const users = parseUsersText(text, file);
      this.options.onUsers(users);
      this.users.applied = digest;
      this.users.refused = undefined;
      this.options.metrics?.reload(true);
      this.options.log.info({ file, users: users.size }, 'users file reloaded');
      return 'reloaded';
    } catch (err) {
      // parseUsersText reports keys, types and positions only, never a password.
      return this.refuse(this.users, digest, err, 'users file reload refused; the last good users stay');
    }
  }

  private async checkPolicies(force: boolean): Promise<ReloadOutcome> {
    const { policyFiles, scopes, log } = this.options;
    const texts = policyFiles.map(readText);
    const unreadable = policyFiles.filter((_, i) => texts[i] === undefined);
    const digest = unreadable.length > 0 ? `unreadable:${unreadable.join(',')}` : sha256(policyFiles.flatMap((f, i) => [f, texts[i]!]));
    if (!force && (digest === this.policies.applied || digest === this.policies.refused)) return 'unchanged';
    let next: PolicySnapshot[];
    try {
      if (unreadable.length > 0) throw new InvalidFiles(`cannot read policy file ${unreadable.join(', ')}`);
      next = policyFiles.map((f, i) => parsePolicyText(texts[i]!, f));
      const names = new Set<string>();
      for (const p of next) {
        if (names.has(p.name)) throw new InvalidFiles(`two policies are named "${p.name}"`);
        names.add(p.name);
      }
    } catch (err) {
      return this.refuse(this.policies, digest, err, 'policy reload refused; the last good policies stay');
    }
    if (!force && sameHashes(next, scopes.policies)) {
      // Only comments or layout changed (or this is the first look at the files): nothing to swap.
      this.policies.applied = digest;
      return 'unchanged';
    }
    try {
      await scopes.refresh(next);
    } catch (err) {
      if (err instanceof PolicyCatalogError) return this.refuse(this.policies, digest, err, 'policy reload refused; the last good policies stay');
      // The files may be fine and the database down: keep trying on each check, count and warn once.
      if (this.policies.failing !== digest) {
        this.policies.failing = digest;
        this.options.metrics?.reload(false);
        log.warn({ err: (err as Error).message }, 'policy reload could not load the catalog; the last good policies stay, retrying');
      }
      return 'failed';
    }
    Object.assign(this.policies, { applied: digest, refused: undefined, failing: undefined });
    this.options.metrics?.reload(true);
    log.info({ policies: next.map((p) => ({ name: p.name, hash: p.hash })), catalog_version: scopes.version }, 'policies reloaded');
    return 'reloaded';
  }

  private refuse(state: FileState, digest: string, err: unknown, message: string): 'failed' {
    state.refused = digest;
    this.options.metrics?.reload(false);
    this.options.log.error({ err: err instanceof Error ? err.message : String(err) }, message);
    return 'failed';
  }
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function sha256(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\u0000');
  return hash.digest('hex');
}

function sameHashes(a: readonly PolicySnapshot[], b: readonly PolicySnapshot[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i].name && p.hash === b[i].hash);
}
