// statement_timeout values read exactly as PostgreSQL's parse_int reads a setting in milliseconds.
import { parseTimeoutMs } from '../../../src/analysis/settings';

describe('parseTimeoutMs', () => {
  test.each<[string, number]>([
    ['1000', 1000],
    [' 1000 ', 1000],
    ['+100', 100],
    ['-1', -1], // parsed; the caller refuses it, as PostgreSQL's range check does
    ['1000ms', 1000],
    ['1000 ms', 1000],
    ['1s', 1000],
    ['1.5s', 1500],
    ['.5s', 500],
    ['1min', 60_000],
    ['1.5h', 5_400_000],
    ['1d', 86_400_000],
    ['2147483647', 2_147_483_647],
    // Rounding: C's rint(), halves to even.
    ['1.5', 2],
    ['2.5', 2],
    ['0.5', 0],
    ['1500us', 2],
    ['2500us', 2],
    ['2.9999s', 3000],
    // A fraction of a unit is first rounded to the next smaller unit: 0.00001 d → 0 h.
    ['0.00001d', 0],
    ['1.0000001h', 3_600_000],
    // strtol with base 0: octal and hexadecimal.
    ['010', 8],
    ['0x10', 16],
    ['0X1f', 31],
    ['0x1e5', 485],
    // A float when the integer is followed by '.' or 'e'.
    ['1e3', 1000],
    ['1.5e3', 1500],
    ['010.6', 11], // strtod reads 10.6 in decimal, not octal
    ['1\t', 1],
  ])('%j → %d ms', (text, ms) => {
    expect(parseTimeoutMs(text)).toBe(ms);
  });

  test.each([
    '',
    ' ',
    'abc',
    '10MIN', // units are case-sensitive
    '10 minutes',
    '10 min x',
    '1e',
    'e5',
    '08', // octal 0, then the unit "8"
    ' .5', // strtol consumed nothing, so no float either
    '-.5',
    '0x1.8', // a hex float: refused rather than guessed
    'inf',
    'nan',
    '2147483648',
    '99999999999',
    '1e400',
    '1_000',
  ])('%j is rejected', (text) => {
    expect(parseTimeoutMs(text)).toBeUndefined();
  });
});
