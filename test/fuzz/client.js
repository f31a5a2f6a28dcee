// Fuzz client loop: one logged-in agent sending seeded mutated sequences and pathological SQL, reconnecting when the proxy hangs up.
const { corpusStep } = require('./step');
const { FuzzSession } = require('./wire');

const USERS = { 1: ['tenant1-agent', 'tenant1-password'], 2: ['tenant2-agent', 'tenant2-password'] };
/** Waits: a well-framed sequence must be answered (else it is a hang); damaged framing may leave the proxy waiting for bytes. */
const ANSWER_MS = 30_000;
const DAMAGED_MS = 500;
const QUIET_MS = 30;
const LOGIN_MS = 10_000;
const LOGIN_ATTEMPTS = 5;
/** The refusal of a statement whose parse ended abnormally inside the parser (analysis/parser.ts). */
const PARSER_FAILURE = /nested too deeply to be checked/;

/**
 * Runs until `shared.stop()` says so. Steps are numbered per client and each draws from its own
 * PRNG stream (seed, client, step), so a step's bytes do not depend on earlier answers.
 */
async function runClient(index, opts, shared) {
  const tenant = index % 2 === 0 ? 1 : 2;
  const [user, password] = USERS[tenant];
  const stats = shared.stats;
  let session;
  let step = 0;
  let failedLogins = 0;
  const recent = [];
  try {
    while (!shared.stop()) {
      if (!session || session.closed || session.parseError) {
        try {
          session = await FuzzSession.connect(opts.port, user, password, LOGIN_MS);
          stats.connections++;
          failedLogins = 0;
          recent.length = 0;
        } catch (err) {
          stats.loginFailures++;
          if (++failedLogins >= LOGIN_ATTEMPTS) {
            shared.finding({ kind: 'login_failed', client: index, step, message: err.message });
            return;
          }
          await new Promise((r) => setTimeout(r, 200 * failedLogins));
          continue;
        }
      }
      const s = corpusStep(opts.seed, index, step, tenant, opts.pathological);
      recent.push({ step, kind: s.kind, hex: s.bytes.toString('hex') });
      if (recent.length > 3) recent.shift();
      stats.steps++;
      stats.messages += s.count;
      stats.bytes += s.bytes.length;
      stats.byKind[s.kind] = (stats.byKind[s.kind] ?? 0) + 1;
      await session.send(s.bytes, s.cuts);
      const outcome = await collect(session, s, stats, (m) => {
        const what = { client: index, tenant, step, message: m.message, routine: m.routine, recent };
        if (m.code === 'XX000') shared.finding({ kind: m.routine === 'ormai.internal_error' ? 'internal_error' : 'XX000', ...what });
        else shared.note({ kind: m.code === '53000' ? 'analysis_unavailable' : 'parser_failure', ...what });
      });
      if (session.parseError) {
        shared.finding({ kind: 'unreadable_response', client: index, tenant, step, message: String(session.parseError), recent });
        session.close();
      } else if (session.closed) {
        stats.proxyClosed++;
        if (outcome.fatal) stats.fatalByCode[outcome.fatal] = (stats.fatalByCode[outcome.fatal] ?? 0) + 1;
      } else if (s.damaged) {
        // Damaged framing may leave part of a frame pending in the proxy, answered or not: what
        // comes next would be read as its rest, so the client starts over on a new connection.
        if (outcome.timedOut) stats.abandoned++;
        else stats.leftAfterDamage++;
        session.close();
      } else if (outcome.timedOut) {
        shared.finding({ kind: 'no_answer', client: index, tenant, step, message: `no ReadyForQuery within ${ANSWER_MS} ms for a well-framed ${s.kind} sequence`, recent });
        session.close();
      }
      step++;
    }
  } finally {
    session?.close();
  }
}

/** Reads answers to one step: until the expected ReadyForQuery count and a short quiet, a close, or the deadline. */
async function collect(session, s, stats, onNotable) {
  const deadline = Date.now() + (s.damaged ? DAMAGED_MS : ANSWER_MS);
  let ready = 0;
  let fatal;
  for (;;) {
    const wait = ready >= s.expectReady ? Math.min(deadline, Date.now() + QUIET_MS) : deadline;
    const m = await session.next(wait);
    if (!m) return { timedOut: ready < s.expectReady && !session.closed && Date.now() >= deadline, fatal };
    if (m.name === 'readyForQuery') ready++;
    else if (m.name === 'error') {
      stats.errorsByCode[m.code] = (stats.errorsByCode[m.code] ?? 0) + 1;
      if (m.severity === 'FATAL' || m.severity === 'PANIC') fatal = m.code;
      // XX000 is a finding; a parser instance that failed past the pre-scan bounds is worth a note.
      if (m.code === 'XX000' || m.code === '53000' || PARSER_FAILURE.test(m.message)) onNotable(m);
    }
  }
}

module.exports = { runClient, USERS };
