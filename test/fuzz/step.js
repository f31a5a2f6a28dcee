// Fuzz step: what one client sends at one step, drawn from the PRNG stream of (seed, client, step) alone.
const { sequence } = require('./corpus');
const { rng, mutateField, mutateBytes } = require('./mutate');
const { pathologicalSql } = require('./pathological');
const { encode, readyCount } = require('./wire');

/**
 * kind: 'valid' (unchanged corpus), 'field' (one field changed, framing intact), 'bytes' (framing
 * may be broken: `damaged`, the proxy may wait for bytes that never come), 'pathological'.
 */
function corpusStep(seed, client, step, tenant, pathological) {
  const r = rng(`${seed}:${client}:${step}`);
  let kind;
  let messages;
  let bytes;
  let damaged = false;
  if (r.chance(pathological)) {
    kind = 'pathological';
    const sql = pathologicalSql(r);
    messages = r.chance(0.7)
      ? [{ t: 'Q', sql }]
      : [{ t: 'P', name: '', sql, types: [] }, { t: 'B', portal: '', stmt: '', pfmt: [], params: [], rfmt: [] }, { t: 'E', portal: '', maxRows: 0 }, { t: 'S' }];
    bytes = Buffer.concat(messages.map(encode));
  } else {
    messages = sequence(r, tenant);
    const roll = r.next();
    if (roll < 0.3) {
      kind = 'valid';
      bytes = Buffer.concat(messages.map(encode));
    } else if (roll < 0.65) {
      kind = 'field';
      const donor = sequence(r, tenant).find((m) => m.sql) ?? {};
      bytes = mutateField(r, messages, donor);
    } else {
      kind = 'bytes';
      const donor = Buffer.concat(sequence(r, tenant).map(encode));
      const mutated = mutateBytes(r, Buffer.concat(messages.map(encode)), donor);
      // Stacked damage now and then.
      bytes = r.chance(0.2) ? mutateBytes(r, mutated.bytes, donor).bytes : mutated.bytes;
      damaged = true;
    }
  }
  // Split across writes now and then, so frames are reassembled across chunks.
  const cuts = r.chance(0.2) ? Array.from({ length: r.int(1, 3) }, () => r.int(1, Math.max(1, bytes.length - 1))) : [];
  return { kind, bytes, cuts, count: messages.length, expectReady: readyCount(messages), damaged };
}

module.exports = { corpusStep };
