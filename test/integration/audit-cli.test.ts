// `ormai-proxy audit verify FILE` through the compiled CLI (`npm test` builds first): exit 0 intact, 1 tampered, 2 usage.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../src/audit/log';
import { FileSink } from '../../src/audit/sinks/file';

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
