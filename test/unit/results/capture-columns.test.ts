import { BackendFramer } from '../../../src/protocol/backend/framer';
import { captureSpec, cutDataRow, cutRowDescription, noData } from '../../../src/results/capture-columns';
import * as backend from '../../../src/protocol/backend/serializer';

const framesOf = (b: Buffer) => new BackendFramer({ maxMessageSize: 1 << 20 }).push(b);
const field = (name: string) => ({ name, tableOid: 0, columnAttr: 0, dataTypeOid: 25, dataTypeSize: -1, typeModifier: -1, format: 0 });

describe('capture columns', () => {
  test('RowDescription and DataRows keep the agent’s columns; the capture goes to the spec', () => {
    const spec = captureSpec(2, true);
    const [desc] = framesOf(backend.rowDescription([field('id'), field('ormai_capture_0'), field('ormai_capture_1')]));
    expect(cutRowDescription(desc, spec)).toEqual(backend.rowDescription([field('id')]));
    const [row] = framesOf(backend.dataRow(['7', '7', null]));
    expect(cutDataRow(row, spec)).toEqual(backend.dataRow(['7']));
    expect(spec.rows).toEqual([['7', null]]);
  });

  test('without RETURNING from the agent nothing of the result is sent', () => {
    const spec = captureSpec(1, false);
    const [desc] = framesOf(backend.rowDescription([field('ormai_capture_0')]));
    expect(cutRowDescription(desc, spec)).toBeUndefined();
    const [row] = framesOf(backend.dataRow(['1']));
    expect(cutDataRow(row, spec)).toBeUndefined();
    expect(spec.rows).toEqual([['1']]);
    expect(noData()).toEqual(Buffer.from('n\0\0\0\x04', 'latin1'));
  });

  test('binary capture columns are kept as hex; the row limit is reported', () => {
    const spec = captureSpec(1, false, [0, 1]);
    const [row] = framesOf(backend.dataRow([Buffer.from([0xde, 0xad]), Buffer.from([0, 1])]));
    cutDataRow(row, spec);
    expect(spec.rows).toEqual([['\\x0001']]);
    expect(captureSpec(2, true, [1]).binary).toEqual([true, true]);
  });
});
