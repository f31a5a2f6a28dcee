// sqlcommenter tags (reason, dry_run) in front of a compiled statement: how a tool call's reason and dry run reach the write rules.
import { ProxyError } from '../errors/catalogue';

/**
 * A sqlcommenter comment (`/*k='v',…*\/ `), keys sorted as the spec says. Keys and values are
 * percent-encoded with every character outside RFC 3986's unreserved set escaped (so also
 * ' ( ) * !, which encodeURIComponent leaves): no quote, star or slash is left to end a value or
 * the comment, and analysis/comments.ts decodes the value back exactly.
 */
export function sqlComment(tags: Record<string, string>): string {
  const keys = Object.keys(tags).sort();
  if (keys.length === 0) return '';
  return `/*${keys.map((k) => `${encodeTag(k)}='${encodeTag(tags[k])}'`).join(',')}*/ `;
}

function encodeTag(value: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch {
    // A lone UTF-16 surrogate has no UTF-8 form.
    throw new ProxyError('tool_arguments_invalid', { message: 'invalid arguments: reason is not valid Unicode text', hint: 'Send the reason as plain text.' });
  }
  return encoded.replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The tags of a write call: its reason (unless blank) and dry_run. */
export function writeTags(args: { reason?: string; dry_run?: boolean }): string {
  const tags: Record<string, string> = {};
  if (args.reason !== undefined && args.reason.trim() !== '') tags.reason = args.reason;
  if (args.dry_run) tags.dry_run = 'true';
  return sqlComment(tags);
}
