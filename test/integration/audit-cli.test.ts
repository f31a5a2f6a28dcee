// `ormai-proxy audit verify FILE` through the compiled CLI (`npm test` builds first): exit 0 intact, 1 tampered, 2 usage.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chainLine, GENESIS_HASH } from '../../src/audit/chain';
import { createAuditLog } from '../../src/audit/factory';
import { AuditLog } from '../../src/audit/log';
import { FileSink } from '../../src/audit/sinks/file';
import { loadConfig } from '../../src/config/load';
import { silentLogger } from '../../src/log';
import { createTestDatabase, type TestDatabase } from '../support/db';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

let dir: string;
let file: string;
let lines: string[];
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-cli-'));
  file = path.join(dir, 'audit.jsonl');
  // Two runs of a proxy: the second continues the chain of the first.
  for (const run of [1, 2]) {
    const log = new AuditLog({ sinks: [new FileSink(file)] });
    for (let i = 0; i < 5; i++) log.emit({ kind: 'statement', decision: i === 2 ? 'refused' : 'allowed', code: i === 2 ? 'model_not_allowed' : undefined, sql: 'SELECT $1', rows: run * 10 + i });
    await log.close();
  }
  lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('an intact file, written across a restart: exit 0', async () => {
  expect(lines).toHaveLength(10);
  const r = await run(['audit', 'verify', file]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^ok: .*audit\.jsonl: 10 events, chain intact; last hash [0-9a-f]{64}\n$/);
});

test.each([
  ['an edited line', (l: string[]) => l.map((x, i) => (i === 7 ? x.replace('"refused"', '"allowed"') : x)), 8],
  ['a removed line', (l: string[]) => l.filter((_, i) => i !== 4), 5],
  ['two reordered lines', (l: string[]) => [...l.slice(0, 7), l[8], l[7], l[9]], 8],
  ['an inserted copy of a line', (l: string[]) => [...l.slice(0, 2), l[0], ...l.slice(2)], 3],
])('%s: exit 1 and the first bad line number', async (_what, tamper, badLine) => {
  const copy = path.join(dir, `tampered-${badLine}.jsonl`);
  expect(tamper(lines)).not.toEqual(lines);
  writeFileSync(copy, tamper(lines).join('\n') + '\n');
  const r = await run(['audit', 'verify', copy]);
  expect(r.code).toBe(1);
  expect(r.stdout).toContain(`line ${badLine}:`);
});

test('usage errors: exit 2', async () => {
  expect(await run(['audit', 'verify'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/Usage/) });
  expect(await run(['audit'])).toMatchObject({ code: 2 });
  expect(await run(['audit', 'verify', path.join(dir, 'missing.jsonl')])).toMatchObject({ code: 2, stderr: expect.stringMatching(/ENOENT/) });
  const usage = await run([]);
  expect(usage).toMatchObject({ code: 2, stdout: expect.stringMatching(/ormai-proxy audit verify FILE/) });
});

describe('keyed chains and published heads', () => {
  let db: TestDatabase;
  let cfgDir: string;
  let cfgFile: string;
  let auditFile: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    cfgDir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-heads-'));
    writeFileSync(path.join(cfgDir, 'policy.yaml'), readFileSync(path.resolve(__dirname, '../../config/quickstart/policy.yaml')));
    writeFileSync(path.join(cfgDir, 'audit.key'), `${'s'.repeat(44)}\n`);
    cfgFile = path.join(cfgDir, 'ormai.yaml');
    auditFile = path.join(cfgDir, 'audit.jsonl');
    writeFileSync(
      cfgFile,
      [
        'policies: [policy.yaml]',
        `upstream: { url: "${db.url}" }`,
        'audit:',
        '  key_file: audit.key',
        '  head_interval_ms: 1000',
        '  sinks: [{ type: file, path: audit.jsonl }, { type: postgres, table: ormai_audit_heads_test }]',
      ].join('\n'),
    );
    // Two runs of the proxy's audit log: each publishes its final head when it closes.
    for (let r = 0; r < 2; r++) {
      const log = await createAuditLog(loadConfig(cfgFile), silentLogger);
      for (let i = 0; i < 3; i++) await log.durable(log.emit({ kind: 'statement', decision: i === 1 ? 'refused' : 'allowed', sql: 'SELECT $1', rows: i }));
      await log.close();
    }
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(cfgDir, { recursive: true, force: true });
  });

  test('the heads are in the postgres sink beside the events, under this host and the file path', async () => {
    const heads = await db.query<{ source: string; event_id: string }>('SELECT source, event_id FROM ormai_audit_heads_test_heads ORDER BY published_at');
    const ids = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
    expect(heads.map((h) => h.source)).toEqual([`${os.hostname()}:${auditFile}`, `${os.hostname()}:${auditFile}`]);
    expect(heads.map((h) => h.event_id)).toEqual([ids[2], ids[5]]);
  });

  test('verify: keyed needs the key; --config brings the key and the heads; --head checks one head', async () => {
    expect(await run(['audit', 'verify', auditFile])).toMatchObject({ code: 2, stderr: expect.stringMatching(/keyed with the audit key: verify it with --key-file/) });
    expect(await run(['audit', 'verify', auditFile, '--key-file', path.join(cfgDir, 'audit.key')])).toMatchObject({ code: 0, stdout: expect.stringMatching(/6 events, chain intact \(keyed\)/) });
    const ok = await run(['audit', 'verify', auditFile, '--config', cfgFile]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/chain intact \(keyed\); 2 of 2 published heads found/) });
    const last = JSON.parse(readFileSync(auditFile, 'utf8').trim().split('\n')[5]).hash as string;
    expect(await run(['audit', 'verify', auditFile, '--key-file', path.join(cfgDir, 'audit.key'), '--head', last.slice(0, 16)])).toMatchObject({ code: 0 });
    expect(await run(['audit', 'verify', auditFile, '--key-file', path.join(cfgDir, 'audit.key'), '--head', 'f'.repeat(16)])).toMatchObject({ code: 1, stdout: expect.stringMatching(/missing head f{16}/) });
    expect(await run(['audit', 'verify', auditFile, '--head', 'xyz'])).toMatchObject({ code: 2 });
  });

  test('a copy edited and fully re-chained without the key: refused by the key, and by the heads even when checked unkeyed', async () => {
    const original = readFileSync(auditFile, 'utf8').trim().split('\n');
    let prev = GENESIS_HASH;
    const forged = original.map((line, i) => {
      const { hash: _h, prev_hash: _p, chain: _c, ...e } = JSON.parse(line);
      if (i === 1) e.decision = 'allowed';
      const linked = chainLine(e, prev);
      prev = linked.hash;
      return linked.line;
    });
    const copy = path.join(cfgDir, 'forged.jsonl');
    writeFileSync(copy, forged.join(''));
    expect(await run(['audit', 'verify', copy])).toMatchObject({ code: 0 });
    expect(await run(['audit', 'verify', copy, '--config', cfgFile, '--source', `${os.hostname()}:${auditFile}`])).toMatchObject({ code: 1, stdout: expect.stringMatching(/line 1: not keyed/) });
    // The heads alone (no key): the forgery holds none of them.
    const noKey = path.join(cfgDir, 'nokey.yaml');
    writeFileSync(noKey, readFileSync(cfgFile, 'utf8').replace('  key_file: audit.key\n', ''));
    const byHeads = await run(['audit', 'verify', copy, '--config', noKey, '--source', `${os.hostname()}:${auditFile}`]);
    expect(byHeads).toMatchObject({ code: 1, stdout: expect.stringMatching(/2 published head\(s\) not in the file: it was edited and re-chained/) });
  });
});
