// `audit verify`: any edited, removed, inserted or reordered line is found, with the first bad line's number and the exit code.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chainLine, GENESIS_HASH } from '../../../src/audit/chain';
import type { AuditEvent } from '../../../src/audit/event';
import { FileSink } from '../../../src/audit/sinks/file';
import { auditCommand, verifyFile, verifyStream } from '../../../src/audit/verify';

let dir: string;
let file: string;
let original: string[];

const event = (n: number): AuditEvent => ({
  id: `01J0000000000000000000${String(n).padStart(4, '0')}`,
  time: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
  kind: 'statement',
  decision: n % 2 ? 'allowed' : 'refused',
  sql: 'SELECT * FROM orders WHERE id = $1',
  rows: n,
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-verify-'));
  file = path.join(dir, 'audit.jsonl');
  const sink = new FileSink(file);
  await sink.write([1, 2, 3, 4, 5].map(event));
  await sink.write([6, 7, 8].map(event));
  await sink.close();
  original = readFileSync(file, 'utf8').split('\n').slice(0, -1);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a tampered copy and verifies it. */
async function verifyLines(lines: string[], trailingNewline = true) {
  const copy = path.join(dir, `copy-${Math.random().toString(36).slice(2)}.jsonl`);
  writeFileSync(copy, lines.join('\n') + (trailingNewline && lines.length ? '\n' : ''));
  return verifyFile(copy);
}

const edit = (line: string, f: (o: Record<string, unknown>) => void) => {
  const o = JSON.parse(line) as Record<string, unknown>;
  f(o);
  return JSON.stringify(o);
};

test('an untouched file is intact', async () => {
  expect(original).toHaveLength(8);
  expect(await verifyLines(original)).toMatchObject({ ok: true, intact: 8, lastHash: JSON.parse(original[7]).hash });
  expect(await verifyLines([])).toEqual({ ok: true, intact: 0, lastHash: GENESIS_HASH });
});

const tamperings: Array<[string, (l: string[]) => string[], number, RegExp]> = [
  ['a field edited', (l) => l.map((x, i) => (i === 3 ? edit(x, (o) => (o.decision = 'allowed')) : x)), 4, /edited/],
  ['a field added', (l) => l.map((x, i) => (i === 5 ? edit(x, (o) => (o.flags = ['ok'])) : x)), 6, /edited/],
  ['the hash recomputed after an edit (the next line no longer links)', (l) => {
    const o = JSON.parse(l[2]);
    o.rows = 1000;
    const { hash: _h, prev_hash, ...rest } = o;
    const relinked = chainLine(rest, prev_hash).line.trimEnd();
    return l.map((x, i) => (i === 2 ? relinked : x));
  }, 4, /does not follow/],
  ['a byte-level change that parses the same', (l) => l.map((x, i) => (i === 1 ? x.replace('"kind"', '"\\u006bind"') : x)), 2, /byte-for-byte/],
  ['a carriage return before the newline', (l) => l.map((x, i) => (i === 0 ? `${x}\r` : x)), 1, /JSON|byte-for-byte/],
  ['a line removed', (l) => l.filter((_, i) => i !== 4), 5, /does not follow/],
  ['the first line removed', (l) => l.slice(1), 1, /does not start a chain/],
  ['two lines swapped', (l) => [l[0], l[2], l[1], ...l.slice(3)], 2, /does not follow/],
  ['a line duplicated', (l) => [...l.slice(0, 3), l[2], ...l.slice(3)], 4, /does not follow/],
  ['a forged line inserted with a valid hash', (l) => {
    const forged = chainLine(event(99), JSON.parse(l[5]).hash).line.trimEnd();
    return [...l.slice(0, 6), forged, ...l.slice(6)];
  }, 8, /does not follow/],
  ['a blank line inserted', (l) => [...l.slice(0, 2), '', ...l.slice(2)], 3, /empty line/],
  ['a line that is not JSON', (l) => [...l.slice(0, 7), 'garbage'], 8, /not a JSON line/],
  ['a line without a hash', (l) => l.map((x, i) => (i === 6 ? edit(x, (o) => delete o.hash) : x)), 7, /no hash/],
];

test.each(tamperings)('%s is detected at the first bad line', async (_what, tamper, badLine, problem) => {
  const result = await verifyLines(tamper(original));
  expect(result).toMatchObject({ ok: false, badLine, problem: expect.stringMatching(problem) });
  expect(result.intact).toBe(badLine - 1);
});

test('a last line without its newline is reported as unfinished', async () => {
  expect(await verifyLines(original, false)).toMatchObject({ ok: false, badLine: 8, problem: expect.stringMatching(/unfinished/) });
});

test('lines split across read chunks at any byte are handled', async () => {
  const text = Buffer.from(original.join('\n') + '\n', 'utf8');
  async function* chunks(size: number) {
    for (let i = 0; i < text.length; i += size) yield text.subarray(i, i + size);
  }
  for (const size of [1, 7, 64, 1000]) expect(await verifyStream(chunks(size))).toMatchObject({ ok: true, intact: 8 });
});

describe('auditCommand', () => {
  function run(args: string[]) {
    let out = '';
    let err = '';
    return auditCommand(args, { write: (t: string) => (out += t) }, { write: (t: string) => (err += t) }).then((code) => ({ code, out, err }));
  }

  test('exit 0 and a summary when intact', async () => {
    const r = await run(['verify', file]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^ok: .*audit\.jsonl: 8 events, chain intact; last hash [0-9a-f]{64}\n$/);
  });

  test('exit 1 and the first bad line when tampered', async () => {
    const copy = path.join(dir, 'tampered.jsonl');
    writeFileSync(copy, [...original.slice(0, 2), ...original.slice(3)].join('\n') + '\n');
    const r = await run(['verify', copy]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^tampered: .*tampered\.jsonl: line 3: does not follow/);
    expect(r.out).toMatch(/the 2 lines before it are intact/);
  });

  test.each([[['verify']], [['verify', 'a', 'b']], [['verify', '--strict']], [[]], [['check', 'x']]])('exit 2 on usage errors: %j', async (args) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Usage:/);
  });

  test('exit 2 for a missing file or a directory', async () => {
    expect(await run(['verify', path.join(dir, 'missing.jsonl')])).toMatchObject({ code: 2, err: expect.stringMatching(/ENOENT/) });
    expect(await run(['verify', dir])).toMatchObject({ code: 2, err: expect.stringMatching(/not a regular file/) });
  });

  test('--help prints the usage and exits 0', async () => {
    expect(await run(['verify', '--help'])).toMatchObject({ code: 0, out: expect.stringMatching(/audit verify FILE/) });
  });
});
