// The tool-call surface's shared types: a call, its compiled statement, and its result (docs/tools.md).
import type { Principal } from '../auth/principal';
import type { ProxyError } from '../errors/catalogue';

/** A tool call as the agent sends it: POST /agent/tool `{ name, arguments }`, or MCP tools/call. */
export interface ToolCall {
  name: string;
  arguments: unknown;
  /** The agent's tool-call id, for the audit event (MCP request id, or the HTTP body's tool_call_id). */
  toolCallId?: string;
}

/** What a db.* call compiles to: one statement, run through an ordinary session of the principal. */
export interface CompiledCall {
  /** The statement, `$n` placeholders for every value; sqlcommenter tags (reason, dry_run) in front. */
  sql: string;
  params: Array<string | null>;
  /** How the rows answer the call: all rows, exactly one (db.get: none is row_not_found), or a write's RETURNING rows. */
  shape: 'rows' | 'one' | 'write';
  /** What the audit event records: the call with its values replaced by $n, field names kept. */
  redactedArguments: unknown;
  /** Raised while compiling, recorded on the event (e.g. tenant_argument_ignored). */
  flags: string[];
  /** A write sent with dry_run: the statement changes nothing and its rows are the preview. */
  dryRun?: boolean;
}

/** The catalogue's refusal, as a tool error. */
export interface ToolError {
  code: string;
  sqlstate: string;
  message: string;
  hint?: string;
  retry_after_s?: number;
  /** A held write's approval id (approval_required). */
  approval_id?: string;
}

export type ToolResult =
  | { ok: true; data: unknown; audit_id?: string; dry_run?: boolean; rows?: number }
  | { ok: false; error: ToolError; audit_id?: string };

/** Runs tool calls as a principal: the one engine behind both doors. */
export interface ToolRunner {
  call(principal: Principal, call: ToolCall): Promise<ToolResult>;
  /** A call a door refused before it reached the runner (a malformed request): audited as a refused call. */
  refuse?(principal: Principal, call: ToolCall, error: ProxyError): Promise<ToolResult>;
}
