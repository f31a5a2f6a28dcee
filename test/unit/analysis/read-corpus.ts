// Read statements of every kind the golden suites cover, with their literals as holes: the shape cache's and the normal form's corpus.

/**
 * Read statements of every kind the golden suites cover, with `#` where a literal goes: each is run
 * with three sets of literals, the third answered from the template made by the first two.
 */
export const CORPUS: string[] = [
  'SELECT id, name FROM customers WHERE id = #i',
  'SELECT * FROM orders WHERE total_cents > #i AND status = #s ORDER BY id LIMIT #i',
  'SELECT * FROM orders WHERE id IN (#i, #i, #i)',
  'SELECT c.name, count(*) AS n, sum(o.total_cents) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.created_at > #s AND o.status = #s GROUP BY c.name ORDER BY n DESC LIMIT #i',
  'SELECT * FROM customers WHERE email LIKE #s',
  'SELECT name FROM customers WHERE name ILIKE #s OR id = #i',
  'SELECT * FROM orders WHERE total_cents BETWEEN #i AND #i',
  'SELECT o.id, (SELECT name FROM customers c WHERE c.id = o.customer_id) FROM orders o WHERE o.total_cents > #n',
  'WITH big AS (SELECT * FROM orders WHERE total_cents > #i) SELECT count(*) FROM big',
  'SELECT id FROM orders WHERE id = #i UNION SELECT id FROM orders WHERE total_cents = #i',
  'SELECT code, name FROM countries WHERE code = #s',
  'SELECT * FROM orders ORDER BY id OFFSET #i',
  'SELECT * FROM orders FETCH FIRST #i ROWS ONLY',
  'SELECT * FROM orders ORDER BY status FETCH FIRST #i ROWS WITH TIES',
  'SELECT id, total_cents * #n AS scaled FROM orders WHERE created_at < now() - #s::interval',
  "SELECT date_trunc('month', created_at) AS m, count(*) FROM orders WHERE created_at >= #s::date GROUP BY 1 ORDER BY 1",
  'SELECT * FROM orders WHERE status = ANY(#s::text[])',
  'SELECT coalesce(phone, #s) FROM customers WHERE id > #i',
  'SELECT CASE WHEN total_cents > #i THEN #s ELSE #s END FROM orders',
  'SELECT to_jsonb(c) FROM customers c WHERE c.id = #i',
  'SELECT * FROM customers WHERE tenant_id = #i AND id = #i',
  'SELECT count(*) FROM orders o WHERE o.tenant_id IN (#i, #i)',
  'SELECT * FROM orders WHERE id = -#i',
  'SELECT id FROM orders WHERE total_cents = #i LIMIT ALL',
  'SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total_cents > #i)',
  'SELECT upper(name), length(name) + #i FROM customers',
  'SELECT id FROM orders WHERE status NOT IN (#s, #s) AND total_cents <> #i',
  'SELECT relname FROM pg_class WHERE relname = #s',
  'SELECT #s::regclass',
  'SELECT attname FROM pg_attribute WHERE attrelid = #s::regclass AND attnum > #i',
  'SELECT format_type(#i, NULL)',
  'SELECT column_name FROM information_schema.columns WHERE table_name = #s',
  'SELECT * FROM customers WHERE api_secret = #s',
  'SELECT * FROM no_such_table WHERE id = #i',
  'SELECT pg_sleep(#i)',
];

const INTS = [[3, 7, 11, 2, 5], [41, 42, 4000, 12, 1], [99, 0, 5, 7, 250]];
const STRS = [["'paid'", "'x''y'", "'2024-01-01'", "'%a%'", "'{a,b}'"], ["'shipped'", "'o''k'", "'2023-05-06'", "'b_%'", "'{c}'"], ["'new'", "'é ü'", "'2025-12-31'", "'%'", "'{}'"]];
const NUMS = [['1.5', '2.25'], ['0.75', '3e2'], ['10.0', '7.125']];

/** The corpus entry with the literals of `set`. */
export function fill(template: string, set: number): string {
  let i = 0;
  let s = 0;
  let n = 0;
  return template.replace(/#([isn])/g, (_, kind: string) => {
    if (kind === 'i') return String(INTS[set][i++ % INTS[set].length]);
    if (kind === 's') return STRS[set][s++ % STRS[set].length];
    return NUMS[set][n++ % NUMS[set].length];
  });
}
