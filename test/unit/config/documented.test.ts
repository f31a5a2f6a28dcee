// Every configuration key is documented in the README: a key an operator cannot look up is a key nobody sets right.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const schema = JSON.parse(readFileSync(path.join(ROOT, 'config', 'ormai.schema.json'), 'utf8')) as Node;

interface Node {
  properties?: Record<string, Node>;
  anyOf?: Node[];
  oneOf?: Node[];
  allOf?: Node[];
  items?: Node;
}

/** A section (`startup`, `upstream.tls`) is documented through its keys. */
const isSection = (node: Node) => node.properties !== undefined || [...(node.anyOf ?? []), ...(node.oneOf ?? [])].some((b) => b.properties !== undefined);

/** Dotted paths of every setting (`audit.sinks[].path`), through unions and arrays; sections are walked, not listed. */
function keys(node: Node, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(node.properties ?? {})) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (!isSection(v)) out.push(p);
    out.push(...keys(v, p));
  }
  for (const branch of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])]) out.push(...keys(branch, prefix));
  if (node.items) out.push(...keys(node.items, `${prefix}[]`));
  return [...new Set(out)];
}

/** Documented: the dotted path in backticks, or (for a nested key) its name as a YAML key or in backticks. */
function documented(key: string): boolean {
  if (readme.includes(`\`${key}\``)) return true;
  if (!key.includes('.')) return false;
  const leaf = key.split('.').pop()!.replace('[]', '');
  return readme.includes(`\`${leaf}\``) || new RegExp(`^\\s*(?:#\\s*)?${leaf}:`, 'm').test(readme) || readme.includes(`{ ${leaf}`) || readme.includes(`, ${leaf}`);
}

test('every key of ormai.yaml is in the README', () => {
  const all = keys(schema);
  expect(all.length).toBeGreaterThan(60);
  expect(all.filter((k) => !documented(k))).toEqual([]);
});

test('the check can fail: an undocumented key is found', () => {
  expect(documented('admin.no_such_setting_anywhere')).toBe(false);
  expect(documented('no_such_top_level_key')).toBe(false);
});
