// Bearer-token check for the admin API: the token comes from a mounted secret and only its digest is kept.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type ProxyConfig } from '../config/load';

/** Short tokens are guessable over a network; 16 characters is the floor, a random 32 bytes the advice. */
export const MIN_TOKEN_LENGTH = 16;

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

export class AdminToken {
  /** Comparing digests makes the comparison constant-time whatever the presented token's length. */
  private readonly expected: Buffer;

  constructor(token: string) {
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`the admin token must be at least ${MIN_TOKEN_LENGTH} characters`);
    if (/\s/.test(token)) throw new ConfigError('the admin token must not contain whitespace');
    this.expected = digest(token);
  }

  /** Reads the token file; one trailing newline (as `echo` and most secret tools write) is ignored. */
  static fromFile(file: string): AdminToken {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read admin token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return new AdminToken(text.replace(/\r?\n$/, ''));
  }

  /** The admin token configured by admin.token_file (relative to the config file), if any. */
  static fromConfig(config: ProxyConfig): AdminToken | undefined {
    const file = config.raw.admin.token_file;
    return file === undefined ? undefined : AdminToken.fromFile(path.resolve(config.dir, file));
  }

  /** True when the Authorization header carries this token as `Bearer <token>`. */
  matches(authorization: string | undefined): boolean {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!m) return false;
    return timingSafeEqual(digest(m[1]), this.expected);
  }

  /** Neither the token nor its digest ends up in logs or JSON. */
  toJSON(): string {
    return '[admin token]';
  }
}
