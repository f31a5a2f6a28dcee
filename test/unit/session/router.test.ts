// The response router: upstream DEBUG and LOG messages never reach the agent; a write's RETURNING is capped on the wire.
import type { Principal } from '../../../src/auth/principal';
import { BackendFramer } from '../../../src/protocol/backend/framer';
import * as backend from '../../../src/protocol/backend/serializer';
import { RowCap } from '../../../src/results/row-cap';
import { ResponseRouter } from '../../../src/session/router';

const principal = { user: 'agent', tenantId: '1', roles: [] } as unknown as Principal;
const frames = (...messages: Buffer[]) => new BackendFramer({ maxMessageSize: 1 << 20 }).push(Buffer.concat(messages));
const V = (severity: string) => ({ severity, code: '00000', message: `a ${severity} message` });

test.each(['DEBUG', 'LOG'])('a %s notice is dropped', (severity) => {
  const router = new ResponseRouter(principal);
  const [frame] = frames(backend.noticeResponse(V(severity)));
  expect(router.route(frame)).toBeUndefined();
});

test.each(['NOTICE', 'WARNING', 'INFO'])('a %s notice is relayed', (severity) => {
  const router = new ResponseRouter(principal);
  const [frame] = frames(backend.noticeResponse(V(severity)));
  expect(router.route(frame)).toEqual(frame.raw);
});

test("a write's RETURNING rows past the cap are dropped; its tag keeps the rows written, after a notice", () => {
  const router = new ResponseRouter(principal);
  router.pending.push({ kind: 'execute', cap: new RowCap(2) });
  const out = frames(
    backend.dataRow(['1']),
    backend.dataRow(['2']),
    backend.dataRow(['3']),
    backend.commandComplete('UPDATE 3'),
  ).map((f) => router.route(f));
  expect(out.filter(Boolean)).toHaveLength(3);
  const [notice, tag] = frames(out[3]!);
  expect(notice.code).toBe('N');
  expect(notice.raw.toString()).toContain('RETURNING truncated to 2 rows');
  expect(tag.raw).toEqual(backend.commandComplete('UPDATE 3'));
});

test("a read's tag counts the rows sent", () => {
  const router = new ResponseRouter(principal);
  router.pending.push({ kind: 'execute', cap: new RowCap(1) });
  const out = frames(backend.dataRow(['1']), backend.dataRow(['2']), backend.commandComplete('SELECT 2')).map((f) => router.route(f));
  const [, tag] = frames(out[2]!);
  expect(tag.raw).toEqual(backend.commandComplete('SELECT 1'));
});
