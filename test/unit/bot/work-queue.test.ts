import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../../bot/work-queue.js';

describe('WorkQueue', () => {
  it('runs everything, a few at a time, and survives failing work', async () => {
    const q = new WorkQueue(2);
    let running = 0;
    let most = 0;
    const done: number[] = [];
    for (let i = 0; i < 7; i++) {
      q.push(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        if (i === 3) throw new Error('this one fails');
        done.push(i);
      });
    }
    await q.drained();
    expect(done.sort()).toEqual([0, 1, 2, 4, 5, 6]);
    expect(most).toBe(2);
  });
});
