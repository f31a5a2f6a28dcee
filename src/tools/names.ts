// Tool names on each surface: canonical `namespace.name` (db.query), and `namespace_name` (db_query) where a model API forbids dots.
//
// The Anthropic Messages API (tools[].name: ^[a-zA-Z0-9_-]{1,64}$) and OpenAI function calling
// (a-z, A-Z, 0-9, _ and -, at most 64) refuse dots. The MCP specification (2025-11-25, "Tool
// names") allows them, but MCP clients hand tool names on to those same model APIs (some
// prefix them, e.g. mcp__server__name) and several refuse a server whose names hold a dot, so
// the MCP surface uses the dotless names too and carries the canonical one as the tool's title.
//
// Back from a wire name: a domain tool's namespace may hold an underscore (sales_ops.top_customers
// is sales_ops_top_customers), so the wire name is matched against the principal's tools first
// (policy load refuses two tools with one wire name). The proxy's own namespaces (db, approvals)
// have none, so for them the first underscore is where the dot was.

/** namespace . name, lower-case letters, digits and underscores (domain tools: src/policy/schema.ts). */
const CANONICAL = /^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/;
/** What both model APIs accept. */
const API_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export function isCanonicalToolName(name: string): boolean {
  return CANONICAL.test(name);
}

/** `db.query` → `db_query`. Throws for a name outside the canonical form (a programming error: tool names are the proxy's or the policy's, checked at load). */
export function wireToolName(name: string): string {
  const wire = name.replace('.', '_');
  if (!CANONICAL.test(name) || !API_NAME.test(wire)) throw new Error(`tool name ${name} is not namespace.name of at most 64 characters`);
  return wire;
}

/**
 * `db_query` or `db.query` → `db.query`; undefined for text that is neither form. `known`: the
 * canonical names of the caller's tools (built-in and its policy's domain tools), which a wire
 * name is matched against before the first underscore is taken for the dot.
 */
export function canonicalToolName(name: string, known: readonly string[] = []): string | undefined {
  if (name.includes('.')) return CANONICAL.test(name) ? name : undefined;
  const listed = known.find((k) => CANONICAL.test(k) && k.replace('.', '_') === name);
  if (listed !== undefined) return listed;
  const at = name.indexOf('_');
  if (at < 0) return undefined;
  const canonical = `${name.slice(0, at)}.${name.slice(at + 1)}`;
  return CANONICAL.test(canonical) ? canonical : undefined;
}
