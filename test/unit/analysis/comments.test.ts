// sqlcommenter tags: read only from real comments, URL-decoded, malformed pairs skipped.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { extractTags, UNREADABLE_DRY_RUN } from '../../../src/analysis/comments';

beforeAll(() => initAnalysis());

describe('extractTags', () => {
  test.each<[string, Record<string, string>]>([
    ["SELECT 1 /*reason='User%20asked',dry_run='true'*/", { reason: 'User asked', dry_run: 'true' }],
    [
      "SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',tool_call_id='call_42'*/",
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tool_call_id: 'call_42' },
    ],
    ["/* reason = 'spaces%20around' , x='1' */ SELECT 1", { reason: 'spaces around', x: '1' }],
    [String.raw`SELECT 1 /*reason='it\'s%2C%20fine'*/`, { reason: "it's, fine" }],
    ["SELECT 1 /*route='%2Fapi%2Forders%3Fid%3D1'*/", { route: '/api/orders?id=1' }],
    ["SELECT 1 /*emoji='%F0%9F%98%80'*/", { emoji: '😀' }],
    // Malformed pairs are skipped; their neighbours still count.
    ["SELECT 1 /*a='%ZZ',b=,c='ok',d=unquoted,='v',e f='x'*/", { c: 'ok' }],
    ['SELECT 1 /* a plain comment, nothing else */', {}],
    ["SELECT 1 /*a='unterminated*/", {}],
    // Only comments count: not string literals, dollar quotes or quoted identifiers.
    ["SELECT '/*reason=''forged''*/'", {}],
    ["SELECT $$ /*reason='forged'*/ $$", {}],
    ['SELECT 1 AS "/*reason=\'forged\'*/"', {}],
    ["SELECT 1 -- /*reason='forged'*/", {}],
    // A nested comment is one comment, as PostgreSQL scans it.
    ["SELECT 1 /* /* */ reason='nested' */", {}],
    // Several comments: the first occurrence of a key wins.
    ["/*reason='first'*/ SELECT 1 /*reason='second',x='y'*/", { reason: 'first', x: 'y' }],
    // The scanner's JSON cannot carry raw control characters; tags survive them.
    ["SELECT 'a\u0001b' /*reason='ctl'*/", { reason: 'ctl' }],
    ['SELECT 1', {}],
  ])('%s', (sql, tags) => {
    expect({ ...extractTags(sql) }).toEqual(tags);
  });

  test('cannot reach Object.prototype', () => {
    const tags = extractTags("SELECT 1 /*__proto__='x',constructor='y'*/");
    expect(Object.getPrototypeOf(tags)).toBeNull();
    expect(tags['__proto__']).toBe('x');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  test('bounds what an agent can put in the audit trail', () => {
    const long = 'v'.repeat(5000);
    expect({ ...extractTags(`SELECT 1 /*big='${long}',ok='1'*/`) }).toEqual({ ok: '1' });
    const many = Array.from({ length: 50 }, (_, i) => `k${i}='${i}'`).join(',');
    expect(Object.keys(extractTags(`SELECT 1 /*${many}*/`))).toHaveLength(32);
  });

  test('text that does not scan gives no tags, and no exception', () => {
    expect({ ...extractTags("SELECT '/*") }).toEqual({});
  });
});

describe('tags in the analysis result', () => {
  test('come with forwarded statements, whose text carries no comment', () => {
    const result = analyze("SELECT 1 /*reason='User%20asked'*/", { protocol: 'extended' });
    expect(result).toMatchObject({ ok: true, sql: 'SELECT 1' });
    expect({ ...result.tags }).toEqual({ reason: 'User asked' });
  });

  test('come with refusals too, for the audit event', () => {
    const result = analyze("DROP TABLE orders /*reason='cleanup'*/", { protocol: 'simple' });
    expect(result.ok).toBe(false);
    expect({ ...result.tags }).toEqual({ reason: 'cleanup' });
  });
});

describe('a dry run the tag syntax lost', () => {
  const lost = (sql: string) => UNREADABLE_DRY_RUN in extractTags(sql);
  test('is flagged when the comment mentions a dry run outside a readable tag', () => {
    expect(lost("/*dry_run=true*/ UPDATE t SET a = 1")).toBe(true);
    expect(lost("/*DRY_RUN='true'*/ UPDATE t SET a = 1")).toBe(true);
    expect(lost("/*reason='r', dry-run='true'*/ UPDATE t SET a = 1")).toBe(true);
    expect(lost("/*reason='r' dryrun please*/ UPDATE t SET a = 1")).toBe(true);
  });
  test('is not flagged for the words of another tag (a reason that mentions one)', () => {
    expect(lost("/*reason='fix after the dry-run'*/ UPDATE t SET a = 1")).toBe(false);
    expect(lost("/*reason='dry_run%20looked%20fine'*/ UPDATE t SET a = 1")).toBe(false);
    expect(lost("/*dry_run='true',reason='the dry run'*/ UPDATE t SET a = 1")).toBe(false);
  });
});
