// The users file: validation messages, snapshot lookups, and secrets kept out of every printable form.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { buildUsersSnapshot, loadUsersFile } from '../../../src/auth/users';
import { formatVerifier, verifyPassword } from '../../../src/auth/verifier';

const PG_VERIFIER_PW =
  'SCRAM-SHA-256$4096:oLCp8GVmyETsj5gvXM4Dnw==$gIcolUjtZkPaJxqj98jBVffAJLP7sJrzRIEziKlg45M=:wscFYmcBjhAD8wtnIEbp5Dx1b0Rr2PZp4II5gf6xHKE=';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ormai-users-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function loadError(text: string): string {
  try {
    loadUsersFile(write('bad.yaml', text));
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the users file to be refused');
}

const VALID = `
users:
  - name: support-bot
    password: "plain s3cret"
    tenant_id: 42
    roles: [agent, reader]
  - name: billing-bot
    scram_verifier: "${PG_VERIFIER_PW}"
    tenant_id: acme
`;

describe('loadUsersFile', () => {
  it('loads a valid file: tenant as text, roles defaulted, passwords turned into verifiers', () => {
    const users = loadUsersFile(write('users.yaml', VALID));
    expect(users.size).toBe(2);
    expect(users.names()).toEqual(['support-bot', 'billing-bot']);
    expect(users.get('support-bot')).toEqual({ name: 'support-bot', tenantId: '42', roles: ['agent', 'reader'] });
    expect(users.get('billing-bot')).toEqual({ name: 'billing-bot', tenantId: 'acme', roles: [] });
    expect(users.has('nobody')).toBe(false);
    expect(users.get('nobody')).toBeUndefined();
    expect(verifyPassword('plain s3cret', users.verifierFor('support-bot')!)).toBe(true);
    expect(verifyPassword('pw', users.verifierFor('billing-bot')!)).toBe(true);
    expect(formatVerifier(users.verifierFor('billing-bot')!)).toBe(PG_VERIFIER_PW);
  });

  it('accepts JSON too (YAML is a superset)', () => {
    const users = loadUsersFile(write('users.json', JSON.stringify({ users: [{ name: 'a', password: 'x', tenant_id: '7' }] })));
    expect(users.get('a')?.tenantId).toBe('7');
  });

  it('never shows passwords or verifiers in JSON, toString or inspect', () => {
    const users = loadUsersFile(write('users.yaml', VALID));
    const record = users.get('support-bot')!;
    const verifier = users.verifierFor('support-bot')!;
    const printed = [
      JSON.stringify(users),
      String(users),
      inspect(users, { showHidden: true, depth: 10 }),
      JSON.stringify(record),
      inspect(record, { showHidden: true }),
    ].join('\n');
    for (const secret of ['plain s3cret', 'oLCp8GVmyETsj5gvXM4Dnw', verifier.storedKey.toString('base64'), 'SCRAM-SHA-256']) {
      expect(printed).not.toContain(secret);
    }
    expect(JSON.parse(JSON.stringify(users))).toEqual({
      users: [
        { name: 'support-bot', tenantId: '42', roles: ['agent', 'reader'] },
        { name: 'billing-bot', tenantId: 'acme', roles: [] },
      ],
    });
    expect(Object.isFrozen(record) && Object.isFrozen(record.roles)).toBe(true);
  });
});

describe('loadUsersFile refuses, with the path of every issue', () => {
  it('an unknown key', () => {
    const msg = loadError('users:\n  - name: a\n    password: x\n    tenant_id: 1\n    tennant: 2\n');
    expect(msg).toMatch(/users\[0\].*tennant/);
  });

  it('an unknown top-level key', () => {
    expect(loadError('users: []\nadmins: []\n')).toMatch(/\(root\).*admins/);
  });

  it('both password and scram_verifier', () => {
    const msg = loadError(`users:\n  - name: a\n    password: x\n    scram_verifier: "${PG_VERIFIER_PW}"\n    tenant_id: 1\n`);
    expect(msg).toMatch(/users\[0\]: give exactly one of password or scram_verifier/);
  });

  it('neither password nor scram_verifier', () => {
    expect(loadError('users:\n  - name: a\n    tenant_id: 1\n')).toMatch(/users\[0\]: give exactly one of password or scram_verifier/);
  });

  it('a verifier that is not a SCRAM-SHA-256 verifier', () => {
    const msg = loadError('users:\n  - name: a\n    scram_verifier: md5a3556571e93b0d20722ba62be61e8c2d\n    tenant_id: 1\n');
    expect(msg).toMatch(/users\[0\]\.scram_verifier: not a SCRAM-SHA-256 verifier/);
    expect(msg).not.toContain('md5a3556571');
  });

  it('a duplicate user', () => {
    const msg = loadError('users:\n  - {name: a, password: x, tenant_id: 1}\n  - {name: b, password: y, tenant_id: 1}\n  - {name: a, password: z, tenant_id: 2}\n');
    expect(msg).toMatch(/users\[2\]\.name: duplicate user "a"/);
  });

  it('missing or mistyped fields, all listed at once', () => {
    const msg = loadError('users:\n  - name: a\n    password: x\n  - name: b\n    password: y\n    tenant_id: 1.5\n    roles: admin\n');
    expect(msg).toMatch(/users\[0\]\.tenant_id: required/);
    expect(msg).toMatch(/users\[1\]\.tenant_id: expected a non-empty string or an integer/);
    expect(msg).toMatch(/users\[1\]\.roles/);
  });

  it('a file that is not a mapping with users', () => {
    expect(loadError('- a\n- b\n')).toMatch(/invalid users file/);
    expect(loadError('')).toMatch(/invalid users file/);
  });

  it('bad YAML, with its position but without the offending line (it may hold a password)', () => {
    const msg = loadError('users:\n  - name: a\n    password: "hunter2\n    tenant_id: 1\n');
    expect(msg).toMatch(/line \d+, column \d+: YAML syntax error \([A-Z_]+\)/);
    expect(msg).not.toContain('hunter2');
    const dup = loadError('users:\n  - name: a\n    password: sekrit\n    password: sekrit2\n    tenant_id: 1\n');
    expect(dup).toMatch(/line 4, column 5: YAML syntax error \(DUPLICATE_KEY\)/);
    expect(dup).not.toContain('sekrit');
  });

  it('a missing file, naming the path', () => {
    expect(() => loadUsersFile(join(dir, 'nope.yaml'))).toThrow(/nope\.yaml/);
  });
});

describe('buildUsersSnapshot', () => {
  it('validates already-parsed data', () => {
    const users = buildUsersSnapshot({ users: [{ name: 'x', password: 'p', tenant_id: 0, roles: ['r'] }] });
    expect(users.get('x')).toEqual({ name: 'x', tenantId: '0', roles: ['r'] });
    expect(() => buildUsersSnapshot({ users: [{ name: '', password: 'p', tenant_id: 1 }] })).toThrow(/users\[0\]\.name/);
  });
});
