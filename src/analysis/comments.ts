// sqlcommenter tags (/*reason='...',dry_run='true'*/): statement metadata read from C-style comments.
//
// Format (sqlcommenter spec): comma-separated `key='value'` pairs; keys and values are
// URL-encoded, then a single quote inside a value is escaped as \'. Only comments that
// PostgreSQL's own scanner recognises count, so a tag-like text inside a string literal or
// a dollar-quoted body is never read as a tag. Malformed pairs are skipped, never fatal:
// tags are advice (a write reason, a trace id), and the statement itself decides nothing here.
import { scanComments } from './parser';

/** Bounds that keep an agent from bloating audit events and logs through tags. */
const MAX_TAGS = 32;
const MAX_KEY_LENGTH = 64;
const MAX_VALUE_LENGTH = 2048;

const KEY = /^[A-Za-z0-9_.:-]+$/;

/** Set by extractTags when a comment mentions dry_run but no dry_run tag could be read from it. */
export const UNREADABLE_DRY_RUN = 'ormai.unreadable_dry_run';
const DRY_RUN_MENTION = /dry(?:[\s_-]|%5f)*run/i;
const PAIR = /^\s*([^=\s']+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*$/s;

/**
 * Tags from every C-style comment in `sql`; the first occurrence of a key wins. Returns a
 * null-prototype object so that no key can reach Object.prototype.
 */
export function extractTags(sql: string): Record<string, string> {
  const tags: Record<string, string> = Object.create(null) as Record<string, string>;
  // Most statements carry no comment at all: skip the scanner for them.
  if (!sql.includes('/*')) return tags;
  let comments: string[];
  try {
    comments = scanComments(sql);
  } catch {
    // Text the scanner rejects is refused by the parser anyway; its tags do not matter.
    return tags;
  }
  for (const comment of comments) parseCommentTags(comment, tags);
  // A dry-run request the tag syntax lost (a missing quote, another case, a dropped pair) must
  // not become a real write: it is flagged, and writes refuse it (analysis/rewrite/writes.ts).
  if (!('dry_run' in tags) && comments.some((c) => DRY_RUN_MENTION.test(outsideOtherTags(c)))) tags[UNREADABLE_DRY_RUN] = '1';
  return tags;
}

/** Adds the well-formed pairs of one comment (`/* ... *\/` included) to `into`. */
export function parseCommentTags(comment: string, into: Record<string, string>): void {
  if (!comment.startsWith('/*') || !comment.endsWith('*/')) return;
  const body = comment.slice(2, -2);
  for (const part of splitPairs(body)) {
    if (Object.keys(into).length >= MAX_TAGS) return;
    const m = PAIR.exec(part);
    if (!m) continue;
    const key = decode(m[1]);
    const value = decode(m[2].replace(/\\(.)/gs, '$1'));
    if (key === undefined || value === undefined) continue;
    if (key.length > MAX_KEY_LENGTH || !KEY.test(key) || value.length > MAX_VALUE_LENGTH) continue;
    if (!(key in into)) into[key] = value;
  }
}

/**
 * A comment without its well-formed tags whose key does not mention a dry run: the words of a
 * `reason='checked the dry-run first'` are the reason's, not a dry-run request the syntax lost.
 */
function outsideOtherTags(comment: string): string {
  if (!comment.startsWith('/*') || !comment.endsWith('*/')) return comment;
  return splitPairs(comment.slice(2, -2))
    .filter((part) => {
      const m = PAIR.exec(part);
      const key = m ? decode(m[1]) : undefined;
      return key === undefined || !KEY.test(key) || DRY_RUN_MENTION.test(key);
    })
    .join(',');
}

/** Splits on commas outside single-quoted values (a quote escaped as \' stays inside). */
function splitPairs(body: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quoted && ch === '\\') {
      i++;
    } else if (ch === "'") {
      quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
