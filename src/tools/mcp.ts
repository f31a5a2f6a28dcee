// The MCP door: the SDK's low-level Server, listing a principal's tools and running tools/call through the ToolRunner.
//
// The low-level Server (not McpServer) because the tools' JSON Schemas come from toolSpecs(policy)
// and are served as they are; McpServer wants zod shapes and would regenerate them. One Server
// per principal: over stdio one for the process, over HTTP one per request (stateless, see http.ts).
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Principal } from '../auth/principal';
import { proxyVersion } from '../admin/health-routes';
import type { Logger } from '../log';
import { internalToolError, successBody } from './answers';
import { canonicalToolName } from './names';
import { toolSpecsAs, type ToolSpec } from './schemas';
import type { ToolResult, ToolRunner } from './types';

export type { ToolSpec };

/** The principal's tools now: a fixed list, or asked for at each tools/list (so a reloaded policy shows). */
export type ToolSpecSource = readonly ToolSpec[] | (() => readonly ToolSpec[] | Promise<readonly ToolSpec[]>);

const INSTRUCTIONS =
  'These tools read and write a PostgreSQL database under a policy that decides which tables, fields and rows you may use. ' +
  'Call db_describe_schema first to learn the models, their fields and which writes need a reason or an approval. ' +
  'A refused call returns an error object { code, sqlstate, message, hint }: follow its hint.';

export interface McpServerOptions {
  log?: Logger;
}

/** Writes; every other tool only reads. update and delete may destroy data, create does not. */
const WRITES: Record<string, { destructiveHint: boolean; idempotentHint: boolean }> = {
  'db.create': { destructiveHint: false, idempotentHint: false },
  'db.update': { destructiveHint: true, idempotentHint: true },
  'db.delete': { destructiveHint: true, idempotentHint: true },
};

/**
 * The MCP form of a spec (toolSpecsAs 'mcp': the dotless name, the canonical one as title, the
 * JSON Schema unchanged), with the hints clients use to ask before a write: every tool works on
 * the one database only (closed world), and reads do not change it.
 */
export function mcpTool(spec: ToolSpec): Tool {
  const [tool] = toolSpecsAs([spec], 'mcp');
  // A domain tool that writes may change or remove anything its statement names.
  const write = WRITES[spec.name] ?? (spec.writes ? { destructiveHint: true, idempotentHint: false } : undefined);
  const annotations = write ? { readOnlyHint: false, ...write, openWorldHint: false } : { readOnlyHint: true, openWorldHint: false };
  return { ...tool, inputSchema: tool.inputSchema as Tool['inputSchema'], annotations };
}

/**
 * A result as MCP's CallToolResult. A refusal is a tool error (isError, so the model sees it and
 * can act on the hint) whose text is the catalogue's object, with the call's audit_id when it has
 * one; no structuredContent then, which clients would check against an output schema.
 */
export function toCallToolResult(result: ToolResult): CallToolResult {
  if (!result.ok) {
    const error = { ...result.error, ...(result.audit_id !== undefined ? { audit_id: result.audit_id } : {}) };
    return { isError: true, content: [{ type: 'text', text: JSON.stringify(error) }] };
  }
  const body = successBody(result);
  return { content: [{ type: 'text', text: JSON.stringify(body) }], structuredContent: body as unknown as Record<string, unknown> };
}

/** The id the audit event records: the caller's own (`_meta.tool_call_id`, e.g. the model's tool-use id), else the MCP request id. */
function toolCallIdOf(meta: Record<string, unknown> | undefined, requestId: string | number): string {
  const own = meta?.tool_call_id;
  return typeof own === 'string' && own.length > 0 && own.length <= 200 ? own : String(requestId);
}

export function createMcpServer(runner: ToolRunner, principal: Principal, specs: ToolSpecSource, options: McpServerOptions = {}): Server {
  const server = new Server({ name: 'ormai-proxy', version: proxyVersion() }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    const list = typeof specs === 'function' ? await specs() : specs;
    return { tools: list.map(mcpTool) };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { name, arguments: args, _meta } = request.params;
    const toolCallId = toolCallIdOf(_meta as Record<string, unknown> | undefined, extra.requestId);
    let result: ToolResult;
    try {
      // db_query (what tools/list names it) and db.query are the same tool; the audit records the canonical name.
      const known = (typeof specs === 'function' ? await specs() : specs).map((s) => s.name);
      result = await runner.call(principal, { name: canonicalToolName(name, known) ?? name, arguments: args ?? {}, toolCallId });
    } catch (err) {
      // The runner answers refusals itself; an exception is the proxy's fault and its text stays in the log.
      options.log?.error({ err: (err as Error).message, tool: name, user: principal.user }, 'tool call failed');
      result = { ok: false, error: internalToolError() };
    }
    return toCallToolResult(result);
  });
  return server;
}
