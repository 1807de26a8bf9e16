// settleWithin: a bounded wait that tells whether the promise settled.
import { describe, expect, it } from 'vitest';
import { settleWithin } from '../../../core/settle-within.js';

describe('settleWithin', () => {
  it('answers true for a promise that settles, fulfilled or rejected', async () => {
    expect(await settleWithin(Promise.resolve(1), 5000)).toBe(true);
    expect(await settleWithin(Promise.reject(new Error('no')), 5000)).toBe(true);
  });

  it('answers false for one that never settles, and leaves no timer behind', async () => {
    expect(await settleWithin(new Promise(() => undefined), 10)).toBe(false);
  });
});
