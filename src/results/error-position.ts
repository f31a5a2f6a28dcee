// Error positions from the database point into the text the proxy sent; the agent needs them in its own text.
//
// The forwarded statement is always the deparsed (and usually rewritten) text, so an
// ErrorResponse's position ('P', 1-based, in characters) would put psql's caret in the wrong
// place, often past the end of what the agent typed. The word at that position is looked up in
// the agent's text: found exactly once, the position moves there; otherwise it is dropped,
// because a wrong caret misleads more than none.
import { FIELD, readErrorFields, writeErrorFields } from '../protocol/backend/error-fields';

/** The word at a position: an identifier, a quoted identifier, or a number. */
const TOKEN = /^(?:"(?:[^"]|"")*"|[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*|[0-9]+(?:\.[0-9]+)?)/;

/** Maps a 1-based character position in `sent` to one in `agent`; undefined when it cannot be placed. */
export function mapPosition(position: number, sent: string, agent: string): number | undefined {
  const sentChars = Array.from(sent);
  if (!Number.isInteger(position) || position < 1 || position > sentChars.length) return undefined;
  const token = TOKEN.exec(sentChars.slice(position - 1).join(''))?.[0];
  if (!token) return undefined;
  const quoted = token.startsWith('"');
  const needle = quoted ? token : token.toLowerCase();
  const haystack = quoted ? agent : agent.toLowerCase();
  const found: number[] = [];
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) {
    const before = haystack[at - 1];
    const after = haystack[at + needle.length];
    if (quoted || ((before === undefined || !/[\w$"]/.test(before)) && (after === undefined || !/[\w$"]/.test(after)))) found.push(at);
    if (found.length > 1) return undefined;
  }
  if (found.length !== 1) return undefined;
  return Array.from(agent.slice(0, found[0])).length + 1;
}

/**
 * The ErrorResponse frame with its position moved into the agent's text, or removed. Frames
 * without a position, and malformed ones, are returned unchanged.
 */
export function withAgentPosition(frame: Buffer, sent: string, agent: string): Buffer {
  const fields = readErrorFields(frame);
  const position = fields?.find(([code]) => code === FIELD.position);
  if (!fields || !position) return frame;
  const kept = fields.filter(([code]) => code !== FIELD.position);
  const mapped = mapPosition(Number(position[1].toString('utf8')), sent, agent);
  if (mapped !== undefined) kept.push([FIELD.position, Buffer.from(String(mapped))]);
  return writeErrorFields(frame[0], kept);
}
