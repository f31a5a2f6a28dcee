// The hash-chained file sink: canonical hashing, the chain across batches and restarts, interrupted writes, foreign files.
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson, canonicalJsonReference, chainLine, GENESIS_HASH } from '../../../src/audit/chain';
import type { AuditEvent } from '../../../src/audit/event';
import { AuditLog } from '../../../src/audit/log';
import { FileSink } from '../../../src/audit/sinks/file';
import { verifyFile } from '../../../src/audit/verify';
import { until } from '../../support/audit-sinks';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-audit-file-'));
  file = path.join(dir, 'nested', 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const event = (n: number, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  id: `01J0000000000000000000${String(n).padStart(4, '0')}`,
  time: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
  kind: 'statement',
  decision: 'allowed',
  principal: { user: 'agent', tenant_id: '1', roles: ['support'] },
  sql: 'SELECT $1',
  rows: n,
  ...extra,
});

const lines = () => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
const parsed = () => lines().map((l) => JSON.parse(l) as AuditEvent & { prev_hash: string; hash: string });

test('canonical JSON sorts keys at every depth, drops undefined, and has no whitespace', () => {
  expect(canonicalJson({ b: 1, a: { d: [1, 'x', null], c: undefined, b: true } })).toBe('{"a":{"b":true,"d":[1,"x",null]},"b":1}');
  expect(canonicalJson({ é: 'ü', e: '\n' })).toBe('{"e":"\\n","é":"ü"}');
  // The engine's serialiser with sorted keys gives the definition's text, index-like keys and odd values included.
  const values: unknown[] = [
    { z: 1, a: [{ y: 2, b: [null, undefined, -0, 1.5e300, 'x"\\'] }], m: { '10': 'a', '9': 'b', k: { '0': 1, '': 2 } } },
    { time: new Date(0), nested: { toJSON: () => ({ b: 1, a: 2 }) }, n: NaN, u: undefined, s: '\u2028\ud800' },
    [{ b: 1, a: 2 }, 'é', true, { 'Ä': 1, a: 1, A: 1, _: 1 }],
    'plain', 5, null,
  ];
  for (const v of values) expect(canonicalJson(v)).toBe(canonicalJsonReference(JSON.parse(JSON.stringify(v))));
});

test('each line carries prev_hash and a SHA-256 of its canonical JSON without hash', async () => {
  const sink = new FileSink(file);
  await sink.write([event(1), event(2)]);
  await sink.write([event(3)]);
  await sink.close();
  const rows = parsed();
  expect(rows.map((r) => r.rows)).toEqual([1, 2, 3]);
  expect(rows[0].prev_hash).toBe(GENESIS_HASH);
  for (let i = 0; i < rows.length; i++) {
    const { hash, ...body } = rows[i];
    expect(hash).toBe(createHash('sha256').update(canonicalJson(body)).digest('hex'));
    if (i > 0) expect(rows[i].prev_hash).toBe(rows[i - 1].hash);
  }
  expect(await verifyFile(file)).toEqual({ ok: true, intact: 3, lastHash: rows[2].hash });
  expect(statSync(file).mode & 0o777).toBe(0o600);
});

test('the hash covers what a reader parses back: undefined fields, nested changes, odd characters', async () => {
  const tricky = event(1, { message: undefined, reason: 'quote " backslash \\ tab \t emoji 😀 lone \ud800', changes: { table: 'public.orders', operation: 'update', rows: [{ key: { id: 7 }, before: { status: 'new' }, after: { status: 'paid' } }] } });
  const { line, hash } = chainLine(tricky, GENESIS_HASH);
  expect(line.endsWith('\n')).toBe(true);
  expect(JSON.parse(line)).toMatchObject({ prev_hash: GENESIS_HASH, hash });
  const sink = new FileSink(file);
  await sink.write([tricky, event(2, { duration_ms: -0 })]);
  await sink.close();
  expect((await verifyFile(file)).ok).toBe(true);
});

test('a restarted proxy continues the chain from the last line of the file', async () => {
  const first = new FileSink(file);
  await first.write([event(1), event(2)]);
  await first.close();
  const lastHash = parsed()[1].hash;
  const second = new FileSink(file);
  await second.open();
  await second.write([event(3)]);
  await second.close();
  expect(parsed()[2].prev_hash).toBe(lastHash);
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 3 });
});

test('the chain continues past a last line longer than the tail chunk', async () => {
  const sink = new FileSink(file);
  await sink.write([event(1), event(2, { message: 'x'.repeat(200_000) })]);
  await sink.close();
  const again = new FileSink(file);
  await again.write([event(3)]);
  await again.close();
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 3 });
});

test('an unfinished last line (a crash mid-write) is cut off at open, and the chain goes on', async () => {
  const sink = new FileSink(file);
  await sink.write([event(1)]);
  await sink.close();
  appendFileSync(file, '{"id":"01J00000000000000000000002","ti');
  expect(await verifyFile(file)).toMatchObject({ ok: false, badLine: 2, problem: expect.stringMatching(/unfinished/) });
  const again = new FileSink(file);
  await again.write([event(2)]);
  await again.close();
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 2 });
});

test('a file that does not end in a chained line is refused, not appended to (or cut)', async () => {
  writeFileSync(path.join(dir, 'notes.txt'), 'not an audit file\n');
  await expect(new FileSink(path.join(dir, 'notes.txt')).open()).rejects.toThrow(/not a hash-chained audit event/);
  writeFileSync(path.join(dir, 'partial.txt'), 'plain text without a newline');
  await expect(new FileSink(path.join(dir, 'partial.txt')).open()).rejects.toThrow(/does not end like an audit file/);
  expect(readFileSync(path.join(dir, 'partial.txt'), 'utf8')).toBe('plain text without a newline');
});

test('through an AuditLog: events land in emission order, and close() leaves a verifiable file', async () => {
  const log = new AuditLog({ sinks: [new FileSink(file)], batchSize: 7 });
  const events = Array.from({ length: 50 }, (_, i) => log.emit({ kind: 'statement', decision: i % 3 ? 'allowed' : 'refused', rows: i }));
  await log.durable(events[49]);
  await log.close();
  expect(parsed().map((r) => r.id)).toEqual(events.map((e) => e.id));
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 50 });
});

/** A sink with event 1 fsynced and event 2 written without its fsync. */
async function syncedAndWritten(): Promise<FileSink> {
  const sink = new FileSink(file);
  await sink.write([event(1)]);
  await sink.write([event(2)], false);
  return sink;
}

/** The caller writes events 2 and 3 again (with their fsync) and closes: the file holds `rows`, and its chain verifies. */
async function writeAgainAndClose(sink: FileSink, rows: number[]): Promise<void> {
  await sink.write([event(2), event(3)]);
  await sink.close();
  expect(parsed().map((r) => r.rows)).toEqual(rows);
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: rows.length });
}

/** Makes these calls on the sink's open file fail with EIO; returns what puts them back. */
function failOnDisk(sink: FileSink, ...calls: Array<'sync' | 'truncate'>): () => void {
  const handle = (sink as unknown as { handle: Record<string, unknown> }).handle;
  const real = calls.map((c) => [c, handle[c]] as const);
  for (const c of calls) handle[c] = () => Promise.reject(Object.assign(new Error(`EIO: i/o error, ${c}`), { code: 'EIO' }));
  return () => {
    for (const [c, fn] of real) handle[c] = fn;
  };
}

test('deferred fsync: lines written without it are in the file, the published head names fsynced lines only, and a failed fsync cuts back to them', async () => {
  const sink = new FileSink(file);
  await sink.write([event(1)]);
  const synced = sink.head();
  expect(synced?.event_id).toBe(event(1).id);
  await sink.write([event(2), event(3)], false);
  expect(parsed().map((r) => r.rows)).toEqual([1, 2, 3]);
  expect(sink.head()).toEqual(synced);
  await sink.sync();
  expect(sink.head()).toMatchObject({ event_id: event(3).id, hash: parsed()[2].hash });

  await sink.write([event(4)], false);
  // The fsync fails (EIO): what was written since the last one is not known to be on disk.
  const restore = failOnDisk(sink, 'sync');
  await expect(sink.sync()).rejects.toThrow(/EIO/);
  expect(parsed().map((r) => r.rows)).toEqual([1, 2, 3]);
  restore();
  // The caller writes it again: the chain goes on from the last fsynced line.
  await sink.write([event(4), event(5)], false);
  await sink.close();
  expect(parsed().map((r) => r.rows)).toEqual([1, 2, 3, 4, 5]);
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 5 });
});

test('through an AuditLog with deferred fsync: a durable event fsyncs the read events before it, and the file verifies', async () => {
  const sink = new FileSink(file);
  const log = new AuditLog({ sinks: [sink], syncIntervalMs: 60_000 });
  const reads = Array.from({ length: 5 }, (_, i) => log.emit({ kind: 'statement', decision: 'allowed', rows: i }));
  await log.ready();
  await until(() => lines().length === 5);
  expect(sink.head()).toBeUndefined();
  const write = log.emit({ kind: 'statement', decision: 'allowed', rows: 5 });
  await log.durable(write);
  await Promise.all(reads.map((e) => log.durable(e)));
  expect(sink.head()).toMatchObject({ event_id: write.id });
  await log.close();
  expect(await verifyFile(file)).toMatchObject({ ok: true, intact: 6 });
});

test("opening fsyncs the file it continues (a previous process's last lines may never have been), before its head counts", async () => {
  const first = new FileSink(file);
  await first.write([event(1)], false);
  const probe = await open(file, 'r');
  const proto = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
  await probe.close();
  const sync = jest.spyOn(proto, 'sync');
  try {
    // An fsync that fails: the file is not opened, and no head counts.
    sync.mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    const failing = new FileSink(file);
    await expect(failing.open()).rejects.toThrow(/EIO/);
    expect(failing.head()).toBeUndefined();
    const again = new FileSink(file);
    await again.open();
    expect(sync).toHaveBeenCalledTimes(2);
    expect(again.head()).toMatchObject({ event_id: event(1).id });
    await again.close();
  } finally {
    sync.mockRestore();
  }
  await first.close();
});

test('a cut back that fails is made by the next open, so the lines written again are not doubled', async () => {
  const sink = await syncedAndWritten();
  failOnDisk(sink, 'sync', 'truncate');
  await expect(sink.sync()).rejects.toThrow(/EIO/);
  expect(parsed().map((r) => r.rows)).toEqual([1, 2]);
  await writeAgainAndClose(sink, [1, 2, 3]);
});

test('a batch that cannot be serialised fails like a failed write: the file is cut back to its last fsynced line', async () => {
  const sink = await syncedAndWritten();
  // JSON has no BigInt: the line cannot be made.
  await expect(sink.write([event(3, { rows: 10n as unknown as number })])).rejects.toThrow(/BigInt/);
  expect(parsed().map((r) => r.rows)).toEqual([1]);
  await writeAgainAndClose(sink, [1, 2, 3]);
});

test('a cut back left to the next open is not made on a file moved aside meanwhile: a new chain begins', async () => {
  const sink = await syncedAndWritten();
  failOnDisk(sink, 'sync', 'truncate');
  await expect(sink.sync()).rejects.toThrow(/EIO/);
  renameSync(file, `${file}.old`);
  await writeAgainAndClose(sink, [2, 3]);
});
