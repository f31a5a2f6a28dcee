// Filters the client's startup parameters (I8): only identity and harmless client settings pass.
import { ProxyError } from '../errors/catalogue';

/** Settings a client may pass at startup; forwarded upstream under their canonical name. */
const FORWARDED: Record<string, string> = {
  application_name: 'application_name',
  datestyle: 'DateStyle',
  timezone: 'TimeZone',
  intervalstyle: 'IntervalStyle',
  extra_float_digits: 'extra_float_digits',
  bytea_output: 'bytea_output',
  client_min_messages: 'client_min_messages',
};
/** UTF8 as PostgreSQL names it: pg_char_to_encoding compares names lower-cased, without anything but letters and digits ('UTF-8', "'utf-8'" and 'Unicode' are all UTF8). */
const UTF8_NAMES = new Set(['utf8', 'unicode']);
const encodingKey = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, '');
/** As for SET: the agent may make the session quieter than NOTICE, never louder (DEBUG and LOG messages describe its internals). */
const MESSAGE_LEVELS = new Set(['notice', 'warning', 'error']);

export interface StartupRequest {
  user: string;
  database: string;
  /** Settings to forward upstream (canonical names). */
  settings: Record<string, string>;
  /** `_pq_.*` protocol options, answered with NegotiateProtocolVersion. */
  protocolOptions: string[];
}

function refuse(name: string): ProxyError {
  return new ProxyError('startup_parameter_not_allowed', { message: `startup parameter "${name}" is not allowed` });
}

/** Splits libpq's `options` value into name/value pairs: `-c name=value`, `-cname=value`, `--name=value`. */
export function parseOptions(options: string): Array<[string, string]> {
  const words: string[] = [];
  let current = '';
  let escaped = false;
  let inWord = false;
  for (const ch of options) {
    if (escaped) {
      current += ch;
      escaped = false;
      inWord = true;
    } else if (ch === '\\') {
      escaped = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(current);

  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i];
    if (word === '-c') {
      if (i + 1 >= words.length) throw refuse('options');
      word = words[++i];
    } else if (word.startsWith('-c')) word = word.slice(2);
    else if (word.startsWith('--')) word = word.slice(2);
    else throw refuse('options');
    const eq = word.indexOf('=');
    if (eq <= 0) throw refuse('options');
    pairs.push([word.slice(0, eq).replace(/-/g, '_'), word.slice(eq + 1)]);
  }
  return pairs;
}

function addSetting(settings: Record<string, string>, name: string, value: string): void {
  const key = name.toLowerCase();
  if (key === 'client_encoding') {
    if (!UTF8_NAMES.has(encodingKey(value))) throw refuse('client_encoding');
    return; // the upstream session is always UTF8
  }
  if (key === 'client_min_messages' && !MESSAGE_LEVELS.has(value.trim().toLowerCase())) throw refuse('client_min_messages');
  const canonical = Object.hasOwn(FORWARDED, key) ? FORWARDED[key] : undefined;
  if (!canonical) throw refuse(name);
  settings[canonical] = value;
}

export function filterStartupParams(params: Map<string, string>): StartupRequest {
  const user = params.get('user');
  if (!user) throw new ProxyError('protocol_violation', { message: 'no user name in the startup packet' });
  const settings: Record<string, string> = {};
  const protocolOptions: string[] = [];
  for (const [name, value] of params) {
    if (name === 'user' || name === 'database') continue;
    if (name.startsWith('_pq_.')) protocolOptions.push(name);
    else if (name === 'options') for (const [k, v] of parseOptions(value)) addSetting(settings, k, v);
    else if (name === 'replication') throw refuse('replication');
    else addSetting(settings, name, value);
  }
  return { user, database: params.get('database') || user, settings, protocolOptions };
}
