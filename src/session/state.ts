// The session's prepared statements and portals as PostgreSQL holds them: changed only on PostgreSQL's word.
//
// Every message that may change them (Parse, Bind, Close, a simple Query) is sent with an Effect. The
// response router settles it when PostgreSQL answers: done on ParseComplete, BindComplete,
// CloseComplete or the Query's ReadyForQuery; failed on the message's own ErrorResponse; skipped when
// PostgreSQL discarded it after an earlier error (up to Sync). Only then do the tables change.
//
// A message handled before that answer sees the table as it will be once everything sent before it has
// run (the in-flight effects over the confirmed entries), but only when those effects were sent in the
// same batch (since the last Sync or Query): if one of them fails, PostgreSQL skips the rest of the
// batch, the new message included, so the picture it was checked against can never differ from what
// runs. An effect from an earlier batch may still fail on its own; a message that depends on it waits
// for its answer first.
import type { Portal, Prepared } from './statements';

/**
 * PostgreSQL keeps statement and portal names in hash tables keyed by NAMEDATALEN bytes: a name is
 * cut to its first 63 bytes (the cut can split a multi-byte character), so two names that share them
 * are one name. The proxy keys its tables the same way.
 */
export function nameKey(name: string): string {
  // A key is the name's first 63 UTF-8 bytes, one character per byte; for a short ASCII name that is the name.
  if (name.length <= 63 && ASCII.test(name)) return name;
  return Buffer.from(name, 'utf8').subarray(0, 63).toString('latin1');
}
const ASCII = /^[\x00-\x7f]*$/;
/** The key of a change to every name of a table: no name's key, since names never contain NUL. */
const ALL = '\u0000all';

/** How PostgreSQL answered a message that may change the tables; the router calls exactly one. */
export interface Effect {
  done(): void;
  failed(): void;
  skipped(): void;
}

type Table = 'S' | 'P';
type Entry<T extends Table> = T extends 'S' ? Prepared : Portal;
type Value = Prepared | Portal | undefined;
/** A failed message leaves the name as it was. */
const KEEP = Symbol('keep');

/**
 * One message's change of one name, in flight until PostgreSQL answers it; it is the Effect the
 * router settles (an object of its own rather than closures: every Bind, Execute and Query makes one).
 */
class Change implements Effect {
  open = true;
  /** Resolved when the change is answered; made only for a message that has to wait for it. */
  settled?: Promise<void>;
  settle?: () => void;

  constructor(
    readonly table: Table,
    readonly key: string,
    readonly batch: number,
    /** Order of sending, across names: a change of every name (DEALLOCATE ALL) is compared with one of a single name. */
    readonly seq: number,
    /** What the name holds once the change is confirmed; undefined removes it. */
    readonly value: Value,
    readonly onFail: Value | typeof KEEP,
    /** Counted in SessionState.adding until answered. */
    readonly adds: boolean,
    private readonly finish: (change: Change, outcome: Value | typeof KEEP) => void,
  ) {}

  done(): void {
    this.finish(this, this.value);
  }

  failed(): void {
    this.finish(this, this.onFail);
  }

  skipped(): void {
    this.finish(this, KEEP);
  }
}

/** A promise for the change's answer (most changes are answered before anything asks). */
function answered(change: Change): Promise<void> {
  if (!change.open) return Promise.resolve();
  change.settled ??= new Promise<void>((resolve) => (change.settle = resolve));
  return change.settled;
}

/** One message's changes of both tables, answered together. */
class Both implements Effect {
  constructor(
    private readonly s: Effect,
    private readonly p: Effect,
  ) {}

  done(): void {
    this.s.done();
    this.p.done();
  }

  failed(): void {
    this.s.failed();
    this.p.failed();
  }

  skipped(): void {
    this.s.skipped();
    this.p.skipped();
  }
}

/**
 * The text of the named prepared statements every session of the process holds (the agent's and
 * the forwarded one, in UTF-16 code units): one process holds them all, and a statement's heap is
 * about 1.5 times its two texts (a 1 MB statement, parsed and analysed, kept 3 MB), so a few
 * sessions of large statements would otherwise exhaust the heap of every session.
 */
export class PreparedTextBudget {
  /** Held by confirmed statements and by Parses in flight. */
  used = 0;
  constructor(readonly limit: number) {}
}

/** What a prepared statement counts against the session's and the process's text budgets. */
export function preparedText(prepared: Prepared): number {
  return prepared.agentSql.length + prepared.sql.length;
}

/** The parameters a portal keeps for a write an approval rule may hold (checked at its Execute); other portals keep none. */
function portalText(portal: Portal): number {
  let bytes = 0;
  for (const v of portal.held?.params.values ?? []) bytes += v?.length ?? 0;
  return bytes;
}

/**
 * What a named entry keeps in the proxy's memory, each part with its own text: a statement its
 * texts and trees; a portal the statement it was bound from (the unnamed one, or one since
 * closed, which no name counts), a cursor's declaration, and a held write's parameters. A part
 * that several entries keep counts once (SessionState.refs).
 */
function holdings(table: Table, value: Value): Array<[object, number]> {
  if (value === undefined) return [];
  if (table === 'S') return [[value, preparedText(value as Prepared)]];
  const portal = value as Portal;
  const out: Array<[object, number]> = [];
  if (portal.prepared) out.push([portal.prepared, preparedText(portal.prepared)]);
  const declaration = portal.cursor?.declaration;
  if (declaration) out.push([declaration, declaration.sql.length + (declaration.agentSql?.length ?? 0)]);
  const held = portalText(portal);
  if (held > 0) out.push([portal, held]);
  return out;
}

/** What a message sees under a name now, or the answer it has to wait for first. */
export type Lookup<T> = { value: T | undefined; wait?: undefined } | { wait: Promise<void> };

export class SessionState {
  private readonly confirmed = { S: new Map<string, Prepared>(), P: new Map<string, Portal>() };
  /** Changes sent and not yet answered, by table and key, oldest first. */
  private readonly inFlight = { S: new Map<string, Change[]>(), P: new Map<string, Change[]>() };
  /** Syncs and Queries sent: the messages between two of them run, or are skipped, together. */
  private batch = 0;
  private seq = 0;
  /** What the named statements (preparedText) and held writes' portals (portalText) hold and are adding: this session's part of `budget`. */
  private text = 0;
  private disposed = false;
  /** How many named entries (confirmed or in flight) keep each part (holdings). */
  private readonly refs = new Map<object, number>();
  /** In-flight changes that may add a name, per table: with the confirmed entries, an upper bound of what PostgreSQL will hold. */
  private readonly adding = { S: 0, P: 0 };

  constructor(private readonly budget = new PreparedTextBudget(Number.POSITIVE_INFINITY)) {}

  /**
   * Would `text` more units make this session hold more than `limit`, or the process more than its
   * budget? Which of the two, or undefined when it fits.
   */
  textFull(text: number, limit: number): 'session' | 'process' | undefined {
    if (text === 0) return undefined;
    if (this.text + text > limit) return 'session';
    if (this.budget.used + text > this.budget.limit) return 'process';
    return undefined;
  }

  /** The units a named statement or portal would add: its parts no other entry keeps yet. */
  textOf(table: Table, value: Prepared | Portal): number {
    let units = 0;
    for (const [part, n] of holdings(table, value)) if (!this.refs.has(part)) units += n;
    return units;
  }

  /** Takes (+1) or gives back (-1) what a named entry keeps: a part counts while anything keeps it. */
  private hold(table: Table, value: Value, delta: 1 | -1): void {
    for (const [part, n] of holdings(table, value)) {
      const refs = (this.refs.get(part) ?? 0) + delta;
      if (refs > 0) this.refs.set(part, refs);
      else this.refs.delete(part);
      if (delta === 1 && refs === 1) this.count(n);
      else if (delta === -1 && refs === 0) this.count(-n);
    }
  }

  /** The session ended: what its statements held goes back to the process. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.budget.used -= this.text;
    this.text = 0;
  }

  private count(units: number): void {
    if (this.disposed) return;
    this.text += units;
    this.budget.used += units;
  }

  statement(name: string): Lookup<Prepared> {
    return this.lookup('S', name);
  }

  portal(name: string): Lookup<Portal> {
    return this.lookup('P', name);
  }

  /** Confirmed statements and portals. */
  get size(): { statements: number; portals: number } {
    return { statements: this.confirmed.S.size, portals: this.confirmed.P.size };
  }

  /**
   * Would a Parse (S) or Bind (P) of `name` make PostgreSQL hold more than `limit` statements or
   * portals? The unnamed ones replace each other and never count; an in-flight change counts as
   * an addition until it is answered.
   */
  full(table: Table, name: string, limit: number): boolean {
    if (name === '') return false;
    const key = nameKey(name);
    const held = this.confirmed[table];
    if (held.has(key)) return false;
    return held.size - (held.has('') ? 1 : 0) + this.adding[table] >= limit;
  }

  /** A Sync or Query was sent: what follows is a new batch. */
  endBatch(): void {
    this.batch++;
  }

  /**
   * Parse of a statement the proxy accepted: the name holds it once PostgreSQL says ParseComplete.
   * A Parse of the unnamed statement drops the previous one before anything can fail
   * (exec_parse_message), so a failed one leaves no unnamed statement; a failed named one changes nothing.
   */
  parse(prepared: Prepared): Effect {
    return this.change('S', prepared.name, prepared, prepared.name === '' ? undefined : KEEP);
  }

  /**
   * A Parse the proxy sends on its own, replacing a statement after a reload (behind a Close of the
   * name). If PostgreSQL refuses it, the name holds `orphan`: the agent's statement, which PostgreSQL
   * no longer has.
   */
  reparse(prepared: Prepared, orphan: Prepared): Effect {
    return this.change('S', prepared.name, prepared, orphan);
  }

  /** A Parse the proxy refused (sent as one that fails): only the unnamed statement changes, dropped. */
  refusedParse(name: string): Effect {
    return this.change('S', name, undefined, name === '' ? undefined : KEEP, name !== '');
  }

  /** Bind: the portal exists once PostgreSQL says BindComplete; a failed Bind leaves no usable portal of that name. */
  bind(name: string, portal: Portal): Effect {
    return this.change('P', name, portal, undefined);
  }

  /** Close of a statement or portal; closing a name that does not exist is not an error. */
  close(target: Table, name: string): Effect {
    return this.change(target, name, undefined, KEEP);
  }

  /** DEALLOCATE ALL (S), CLOSE ALL (P): every name of the table is gone once PostgreSQL confirms it. */
  removeAll(table: Table): Effect {
    return this.change(table, ALL, undefined, KEEP);
  }

  /** DISCARD ALL: every statement and portal. */
  discardAll(): Effect {
    return new Both(this.removeAll('S'), this.removeAll('P'));
  }

  /** A simple Query replaces the unnamed statement and portal with its own (exec_simple_query), whatever its outcome. */
  query(): Effect {
    return new Both(this.change('S', '', undefined, undefined), this.change('P', '', undefined, undefined));
  }

  /**
   * An error ended the transaction's portals: an aborted block keeps none that can run, and an
   * implicit transaction is rolled back. (Portals bound before a savepoint that is rolled back to
   * survive in PostgreSQL; the proxy forgets them too, so their Execute is refused, never run.)
   */
  transactionFailed(): void {
    this.clearPortals();
  }

  /** A ReadyForQuery with status idle: the transaction ended, and its portals with it. */
  transactionEnded(): void {
    this.clearPortals();
  }

  private clearPortals(): void {
    for (const [key, portal] of this.confirmed.P) if (key !== '') this.hold('P', portal, -1);
    this.confirmed.P.clear();
  }

  private lookup<T extends Table>(table: T, name: string): Lookup<Entry<T>> {
    const key = nameKey(name);
    const own = this.inFlight[table].get(key);
    const every = this.inFlight[table].get(ALL);
    const mine = own?.[own.length - 1];
    const all = every?.[every.length - 1];
    const last = mine && all ? (mine.seq > all.seq ? mine : all) : (mine ?? all);
    if (last) return last.batch === this.batch ? { value: last.value as Entry<T> | undefined } : { wait: answered(last) };
    return { value: this.confirmed[table].get(key) as Entry<T> | undefined };
  }

  /**
   * Records an in-flight change of one name: done() applies `value`, failed() applies `onFail`
   * (KEEP: nothing), skipped() nothing; the first call settles it, later ones are ignored.
   * `invisible` changes settle like the others but are not what later messages see (a refused
   * named Parse, which PostgreSQL rejects before looking at the name).
   */
  private change(table: Table, name: string, value: Value, onFail: Value | typeof KEEP, invisible = false): Effect {
    const key = nameKey(name);
    const adds = value !== undefined && key !== '' && key !== ALL;
    const change = new Change(table, key, this.batch, this.seq++, value, onFail, adds, this.finish);
    if (!invisible) {
      const list = this.inFlight[table].get(key);
      if (list) list.push(change);
      else this.inFlight[table].set(key, [change]);
    }
    if (adds) this.adding[table]++;
    if (adds) this.hold(table, value, 1);
    return change;
  }

  /** A change answered: the first call settles it (applying `outcome` unless KEEP), later ones are ignored. */
  private readonly finish = (change: Change, outcome: Value | typeof KEEP): void => {
    if (!change.open) return;
    change.open = false;
    const { table, key } = change;
    if (change.adds) this.adding[table]--;
    // The in-flight addition's hold is given back; what the name keeps from now on is held below.
    if (change.adds) this.hold(table, change.value, -1);
    const changes = this.inFlight[table].get(key);
    const at = changes ? changes.indexOf(change) : -1;
    if (at >= 0) {
      changes!.splice(at, 1);
      if (changes!.length === 0) this.inFlight[table].delete(key);
    }
    if (outcome !== KEEP) {
      // Answers come in order: every entry confirmed so far was created before a removal of all.
      const map = this.confirmed[table] as Map<string, Prepared | Portal>;
      // The new value is held before the old one is given back: a part both keep stays counted once.
      if (key !== ALL && key !== '') this.hold(table, outcome, 1);
      if (key === ALL) for (const [k, v] of map) this.hold(table, k === '' ? undefined : v, -1);
      else if (key !== '') this.hold(table, map.get(key), -1);
      if (key === ALL) map.clear();
      else if (outcome === undefined) map.delete(key);
      else map.set(key, outcome);
    }
    change.settle?.();
  };
}
