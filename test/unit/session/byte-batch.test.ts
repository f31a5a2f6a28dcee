// A batch of outgoing bytes: everything in order as one buffer, adjacent views of one chunk as one view of it.
import { ByteBatch } from '../../../src/session/byte-batch';

test('adjacent views of one chunk come out as one view of that memory, not a copy', () => {
  const chunk = Buffer.from('BindDescribeExecuteSync');
  const batch = new ByteBatch();
  batch.add(chunk.subarray(0, 4));
  batch.add(chunk.subarray(4, 12));
  batch.add(chunk.subarray(12, 19));
  batch.add(chunk.subarray(19));
  const out = batch.take()!;
  expect(out.toString()).toBe('BindDescribeExecuteSync');
  expect(out.buffer).toBe(chunk.buffer);
  expect(out.byteOffset).toBe(chunk.byteOffset);
});

test('pieces from elsewhere are copied together with the runs, in the order they were added', () => {
  const chunk = Buffer.from('aaabbbccc');
  const batch = new ByteBatch();
  batch.add(chunk.subarray(0, 3));
  batch.add(Buffer.from('XY'));
  batch.add(chunk.subarray(3, 6));
  // A gap in the chunk: not adjacent, so not one view.
  batch.add(chunk.subarray(7, 9));
  batch.add(chunk.subarray(0, 1));
  expect(batch.take()!.toString()).toBe('aaaXYbbbcca');
});

test('a single piece is handed back as it is; an empty batch gives nothing, and take() empties it', () => {
  const batch = new ByteBatch();
  expect(batch.empty).toBe(true);
  expect(batch.take()).toBeUndefined();
  batch.add(Buffer.alloc(0));
  expect(batch.empty).toBe(true);
  const one = Buffer.from('Z');
  batch.add(one);
  expect(batch.empty).toBe(false);
  expect(batch.take()).toBe(one);
  expect(batch.empty).toBe(true);
  expect(batch.take()).toBeUndefined();
});
