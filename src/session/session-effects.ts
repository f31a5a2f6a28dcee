// What the statements drivers send to tidy a session and to read cursors change in it, as PostgreSQL runs them.
import type { ClosePortalStmt, DeallocateStmt, DeclareCursorStmt, DiscardStmt, FetchStmt } from '@pgsql/types';
import type { AnalyzedStatement } from '../analysis/pipeline';
import { nodeBody } from '../analysis/types';
import { ProxyError } from '../errors/catalogue';
import { RowCap } from '../results/row-cap';
import { nameKey, type Effect, type SessionState } from './state';
import type { Portal, Prepared } from './statements';

/** What PREPARE, DEALLOCATE, CLOSE and DISCARD statements change in the session's statements and portals, once they complete. */
export function sessionEffects(
  state: SessionState,
  statements: readonly AnalyzedStatement[],
  declared: ReadonlyMap<number, Portal>,
  prepared: ReadonlyMap<number, Prepared> = NO_PREPARED,
): { effects?: Array<Effect | undefined> } {
  if (!statements.some((s) => s.kind === 'session') && declared.size === 0) return {};
  return {
    effects: statements.map((s, i) => {
      switch (s.nodeType) {
        case 'PrepareStmt': {
          // As a named Parse: the name holds the statement once PostgreSQL confirms it; a
          // PREPARE that fails (a name in use, an aborted transaction) leaves the name as it was.
          const record = prepared.get(i);
          return record ? state.parse(record) : undefined;
        }
        case 'DeclareCursorStmt': {
          const cursor = declared.get(i);
          return cursor ? state.bind(nodeBody<DeclareCursorStmt>(s.stmt).portalname ?? '', cursor) : undefined;
        }
        case 'DeallocateStmt': {
          const body = nodeBody<DeallocateStmt>(s.stmt);
          return body.isall || body.name === undefined ? state.removeAll('S') : state.close('S', body.name);
        }
        case 'ClosePortalStmt': {
          const name = nodeBody<ClosePortalStmt>(s.stmt).portalname;
          return name === undefined ? state.removeAll('P') : state.close('P', name);
        }
        case 'DiscardStmt':
          return nodeBody<DiscardStmt>(s.stmt).target === 'DISCARD_ALL' ? state.discardAll() : undefined;
        default:
          return undefined;
      }
    }),
  };
}

const NONE: ReadonlyMap<number, Portal> = new Map();
const NO_PREPARED: ReadonlyMap<number, Prepared> = new Map();

/** The cursors `statements` declare, by statement index: each a portal whose FETCHes share one row cap. */
export function declaredCursors(statements: readonly AnalyzedStatement[]): ReadonlyMap<number, Portal> {
  if (!statements.some((s) => s.nodeType === 'DeclareCursorStmt')) return NONE;
  const declared = new Map<number, Portal>();
  statements.forEach((s, i) => {
    if (s.nodeType !== 'DeclareCursorStmt') return;
    const budget = { rows: 0 };
    declared.set(i, { cursor: { limit: s.rowLimit, budget, declaration: s }, cap: new RowCap(s.rowLimit, budget), resultFormats: [], writes: false, targets: false });
  });
  return declared;
}

/**
 * The cap of each FETCH among `statements`: its cursor's, shared by every FETCH from it. The
 * cursor is one declared earlier in the same text, or one PostgreSQL holds for the session (a
 * promise when its DECLARE is still unanswered from an earlier batch). FETCH or MOVE in a name
 * that is no cursor is refused: a portal bound with Bind runs its statement, whole, under either
 * (a write with RETURNING, which the proxy adds to every write it captures, runs to completion),
 * and only its Execute is checked and audited as the statement it is.
 */
export function fetchCaps(state: SessionState, statements: readonly AnalyzedStatement[], declared: ReadonlyMap<number, Portal>): Array<RowCap | undefined> | Promise<void> | ProxyError {
  const caps: Array<RowCap | undefined> = [];
  if (!statements.some((s) => s.nodeType === 'FetchStmt')) return caps;
  const here = new Map<string, Portal>();
  for (const [i, s] of statements.entries()) {
    if (s.nodeType === 'DeclareCursorStmt') here.set(nameKey(nodeBody<DeclareCursorStmt>(s.stmt).portalname ?? ''), declared.get(i)!);
    if (s.nodeType !== 'FetchStmt') continue;
    const move = nodeBody<FetchStmt>(s.stmt).ismove === true;
    const name = nodeBody<FetchStmt>(s.stmt).portalname ?? '';
    let portal = here.get(nameKey(name));
    if (!portal) {
      const found = state.portal(name);
      if (found.wait) return found.wait;
      portal = found.value;
    }
    if (!portal) return new ProxyError('portal_not_found', { message: `cursor "${name}" does not exist` });
    if (!portal.cursor) {
      return new ProxyError('statement_not_allowed', {
        message: `${move ? 'MOVE in' : 'FETCH from'} portal "${name}" is not allowed`,
        hint: `${move ? 'MOVE' : 'FETCH'} works on cursors declared with DECLARE … CURSOR FOR SELECT; run a bound portal with Execute.`,
      });
    }
    // MOVE sends no rows: nothing to cap.
    if (!move) caps[i] = new RowCap(portal.cursor.limit, portal.cursor.budget);
  }
  return caps;
}

/** A statement whose rows the scan budget plans: a SELECT, or the query of a cursor. */
export function readsRows(s: AnalyzedStatement): boolean {
  return s.nodeType === 'SelectStmt' || s.nodeType === 'DeclareCursorStmt';
}
