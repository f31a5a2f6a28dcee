// The Parse message the proxy sends upstream, written here rather than by pg-protocol's serializer.
//
// The agent's statement names go upstream as the agent sent them, whatever their length: PostgreSQL
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
