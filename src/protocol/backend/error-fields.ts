// The fields of an ErrorResponse or NoticeResponse frame as raw (code, value) pairs, and the frame rebuilt from them.
//
// Layout: tag byte ('E' or 'N'), int32 length (itself included), then (field code byte,
// NUL-terminated value)* and a final NUL. Values stay bytes: only the fields a caller
// changes are decoded.

export type ErrorField = [code: number, value: Buffer];

/** The fields in frame order; undefined when the frame is malformed (an unterminated value). */
export function readErrorFields(frame: Buffer): ErrorField[] | undefined {
  const fields: ErrorField[] = [];
  let at = 5;
  while (at < frame.length && frame[at] !== 0) {
    const end = frame.indexOf(0, at + 1);
    if (end < 0) return undefined;
    fields.push([frame[at], frame.subarray(at + 1, end)]);
    at = end + 1;
  }
  return fields;
}

/** A frame with the given tag and fields. */
export function writeErrorFields(tag: number, fields: readonly ErrorField[]): Buffer {
  const length = 4 + fields.reduce((n, [, v]) => n + 2 + v.length, 0) + 1;
  const out = Buffer.alloc(1 + length);
  out[0] = tag;
  out.writeUInt32BE(length, 1);
  let w = 5;
  for (const [code, value] of fields) {
    out[w++] = code;
    w += value.copy(out, w);
    out[w++] = 0;
  }
  out[w] = 0;
  return out;
}

export const FIELD = {
  severity: 0x53, // S
  code: 0x43, // C
  message: 0x4d, // M
  detail: 0x44, // D
  hint: 0x48, // H
  position: 0x50, // P
  internalPosition: 0x70, // p
  internalQuery: 0x71, // q
  where: 0x57, // W
  routine: 0x52, // R
} as const;
