// Messages the proxy writes for the upstream itself, rather than with pg-protocol's serializer.
//
// Parse: // The agent's statement names go upstream as the agent sent them, whatever their length: PostgreSQL
// cuts them to 63 bytes itself, and the proxy keys its own tables the same way (session/state.ts).
// pg-protocol's serializer would write a console warning for every such name.
import { Writer } from '../protocol/backend/writer';

/** 'P' · int32 length · name · text · int16 parameter count · int32 type OID each. */
export function parseMessage(name: string, text: string, types: readonly number[] = []): Buffer {
  const w = new Writer('P', name.length + text.length * 3 + 4 + types.length * 4);
  w.cstring(name).cstring(text).uint16(types.length);
  for (const oid of types) w.uint32(oid);
  return w.finish();
}

/** The fields of a Bind as the frontend decoder read them (raw is the whole message). */
interface BindFields {
  portal: string;
  statement: string;
  paramFormats: readonly number[];
  params: ReadonlyArray<Buffer | null>;
  raw: Buffer;
}

/**
 * The agent's Bind with another list of result format codes. The list is the message's tail
 * (int16 count, then an int16 per code); everything before it is kept byte for byte.
 */
export function withResultFormats(bind: BindFields, formats: readonly number[]): Buffer {
  let head = 5 + Buffer.byteLength(bind.portal) + 1 + Buffer.byteLength(bind.statement) + 1 + 2 + 2 * bind.paramFormats.length + 2;
  for (const p of bind.params) head += 4 + (p?.length ?? 0);
  const out = Buffer.allocUnsafe(head + 2 + 2 * formats.length);
  bind.raw.copy(out, 0, 0, head);
  out.writeInt32BE(out.length - 1, 1);
  out.writeUInt16BE(formats.length, head);
  formats.forEach((f, i) => out.writeInt16BE(f, head + 2 + 2 * i));
  return out;
}

/** The agent's Execute with another row limit: 'E' · int32 length · portal · uint32 rows (the last four bytes). */
export function withMaxRows(execute: Buffer, maxRows: number): Buffer {
  const out = Buffer.from(execute);
  out.writeUInt32BE(maxRows, out.length - 4);
  return out;
}
