import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../core/errors.js';
import { checkName, isName } from '../../../core/names.js';

describe('checkName: the one check of every identifier', () => {
  it('accepts the names dr.yaml and the operations use', () => {
    expect(checkName('app', 'prod-web')).toBe('prod-web');
    expect(checkName('volume', 'data_1')).toBe('data_1');
    expect(checkName('operation', 'op-mabc1234')).toBe('op-mabc1234');
    expect(checkName('point', '42')).toBe(42);
    expect(checkName('point', 7)).toBe(7);
    expect(checkName('point', 'latest')).toBe('latest');
  });

  it.each([
    ['app', '../../etc'],
    ['app', 'a/b'],
    ['app', ''],
    ['app', 'Web'],
    ['app', '.hidden'],
    ['app', 'web\u0000'],
    ['app', 'x'.repeat(64)],
    ['app', 42],
    ['volume', '..'],
    ['volume', 'a b'],
    ['operation', 'op-../x'],
    ['operation', 'drill'],
    ['point', '0'],
    ['point', '-1'],
    ['point', '1.5'],
    ['point', '1e15'],
    ['point', '99999999999999999'],
    ['point', 0],
    ['point', 'head'],
  ] as const)('refuses %s %j with a one-line error and a remedy', (kind, value) => {
    expect(isName(kind, value)).toBe(false);
    try {
      checkName(kind, value, 'test');
      expect.unreachable();
    } catch (err) {
      expect(isDrError(err, 'bad_request')).toBe(true);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toContain('To resolve');
    }
  });
});
