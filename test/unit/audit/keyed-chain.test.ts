// The keyed chain and published heads: a file edited and fully re-chained no longer verifies with the key, nor against a head.
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson, chainLine, GENESIS_HASH, KEYED, type ChainHead } from '../../../src/audit/chain';
import type { AuditEvent } from '../../../src/audit/event';
import { chainSource, HeadPublisher } from '../../../src/audit/heads';
import { chainKeyOf } from '../../../src/audit/hmac';
import { FileSink, FileSinkError } from '../../../src/audit/sinks/file';
import { verifyFile } from '../../../src/audit/verify';

const KEY = Buffer.from('k'.repeat(40));
const OTHER = Buffer.from('o'.repeat(40));
let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-keyed-'));
  file = path.join(dir, 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const event = (n: number): AuditEvent => ({
  id: `01J0000000000000000000${String(n).padStart(4, '0')}`,
  time: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
  kind: 'statement',
  decision: n === 2 ? 'refused' : 'allowed',
  sql: 'SELECT $1',
  rows: n,
});
const lines = () => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');

/** What someone with the file but without the key can do: edit a line and recompute every hash after it. */
function rechain(text: string[], edit: (e: Record<string, unknown>) => void, key?: Buffer): string[] {
  let prev = GENESIS_HASH;
  return text.map((line, i) => {
    const { hash: _h, prev_hash: _p, chain: _c, ...e } = JSON.parse(line) as Record<string, unknown>;
    if (i === 1) edit(e);
    const linked = chainLine(e as unknown as AuditEvent, prev, key ? chainKeyOf(key) : undefined);
    prev = linked.hash;
    return linked.line.trimEnd();
  });
}

async function writeKeyed(n: number, key = KEY): Promise<FileSink> {
  const sink = new FileSink(file, undefined, chainKeyOf(key));
  await sink.write(Array.from({ length: n }, (_, i) => event(i + 1)));
  return sink;
}

test('a keyed line carries chain: hmac-sha256 and an HMAC of its canonical JSON under the derived chain key', async () => {
  await (await writeKeyed(3)).close();
  const chainKey = createHmac('sha256', KEY).update('ormai-proxy audit chain v1').digest();
  for (const line of lines()) {
    const { hash, ...body } = JSON.parse(line);
    expect(body.chain).toBe(KEYED);
    expect(hash).toBe(createHmac('sha256', chainKey).update(canonicalJson(body)).digest('hex'));
    // Not the unkeyed hash, and not an HMAC under the audit key itself (the sql_hmac key).
    expect(hash).not.toBe(createHash('sha256').update(canonicalJson(body)).digest('hex'));
    expect(hash).not.toBe(createHmac('sha256', KEY).update(canonicalJson(body)).digest('hex'));
  }
  expect(await verifyFile(file, { key: chainKeyOf(KEY) })).toMatchObject({ ok: true, intact: 3 });
  expect(await verifyFile(file)).toMatchObject({ ok: false, badLine: 1, needsKey: true });
  expect(await verifyFile(file, { key: chainKeyOf(OTHER) })).toMatchObject({ ok: false, badLine: 1, problem: expect.stringMatching(/another key/) });
});

test('an edited and fully re-chained file fails with the key, whether re-chained unkeyed or under a guessed key', async () => {
  await (await writeKeyed(4)).close();
  const original = lines();
  const flip = (e: Record<string, unknown>) => (e.decision = 'allowed');
  writeFileSync(file, rechain(original, flip).join('\n') + '\n');
  // Unkeyed, the forgery is self-consistent: only the key tells.
  expect(await verifyFile(file)).toMatchObject({ ok: true });
  expect(await verifyFile(file, { key: chainKeyOf(KEY) })).toMatchObject({ ok: false, badLine: 1, problem: expect.stringMatching(/not keyed/) });
  writeFileSync(file, rechain(original, flip, OTHER).join('\n') + '\n');
  expect(await verifyFile(file, { key: chainKeyOf(KEY) })).toMatchObject({ ok: false, badLine: 1 });
});

test('the sink continues a keyed file under its key, and refuses to mix keyings or keys', async () => {
  await (await writeKeyed(2)).close();
  const again = new FileSink(file, undefined, chainKeyOf(KEY));
  await again.write([event(3)]);
  await again.close();
  expect(await verifyFile(file, { key: chainKeyOf(KEY) })).toMatchObject({ ok: true, intact: 3 });
  await expect(new FileSink(file).open()).rejects.toThrow(/keyed but audit.key_file is not set/);
  await expect(new FileSink(file, undefined, chainKeyOf(OTHER)).open()).rejects.toThrow(FileSinkError);
  const plain = path.join(dir, 'plain.jsonl');
  const unkeyed = new FileSink(plain);
  await unkeyed.write([event(1)]);
  await unkeyed.close();
  await expect(new FileSink(plain, undefined, chainKeyOf(KEY)).open()).rejects.toThrow(/written without a key and audit.key_file is now set/);
});

test('heads: a re-chained unkeyed file has lost the heads published before the edit took place; newer heads are told apart', async () => {
  const sink = new FileSink(file);
  const published: Array<[string, ChainHead]> = [];
  const heads = new HeadPublisher({ files: [sink], targets: [{ name: 'postgres:t', publishHead: async (s, h) => void published.push([s, h]) }], intervalMs: 60_000, host: 'pod-a' });
  await sink.write([event(1), event(2)]);
  await heads.publish();
  await heads.publish(); // unchanged: not published again
  await sink.write([event(3), event(4)]);
  await heads.stop();
  await sink.close();
  expect(published.map(([s]) => s)).toEqual([chainSource(file, 'pod-a'), chainSource(file, 'pod-a')]);
  expect(published.map(([, h]) => h.event_id)).toEqual([event(2).id, event(4).id]);
  expect(heads.published()).toEqual([expect.objectContaining({ sink: `file:${file}`, hash: published[1][1].hash, event_time: event(4).time })]);
  const refs = published.map(([, h]) => h);
  expect(await verifyFile(file, { heads: refs })).toMatchObject({ ok: true, heads: { checked: 2, found: 2, missing: [] } });
  // A prefix of 16 hex digits (the metric's label) finds its line too.
  expect(await verifyFile(file, { heads: [{ hash: refs[0].hash.slice(0, 16) }] })).toMatchObject({ ok: true, heads: { found: 1 } });
  const original = lines();
  writeFileSync(file, rechain(original, (e) => (e.decision = 'allowed')).join('\n') + '\n');
  const forged = await verifyFile(file, { heads: refs });
  expect(forged).toMatchObject({ ok: false, problem: expect.stringMatching(/re-chained/), heads: { found: 0 } });
  expect(forged.heads!.missing.map((h) => h.event_id)).toEqual([event(2).id, event(4).id]);
  // A copy taken before the second head: that head is newer than the copy, not missing.
  writeFileSync(file, original.slice(0, 2).join('\n') + '\n');
  expect(await verifyFile(file, { heads: refs })).toMatchObject({ ok: true, heads: { found: 1, newer: [expect.objectContaining({ event_id: event(4).id })] } });
});
