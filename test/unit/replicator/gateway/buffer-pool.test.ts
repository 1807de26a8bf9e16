/** Buffers kept between segment uploads: reused, bounded, and let go once idle. */
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../../../replicator/gateway/buffer-pool.js';
import { waitFor } from '../../../helpers/wait-for.js';

describe('BufferPool', () => {
  it('hands a given-back buffer out again', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    expect(a.length).toBe(1024);
    pool.give(a);
    expect(pool.take()).toBe(a);
    expect(pool.take()).not.toBe(a);
  });

  it('keeps at most `keep` spares and none of another size', () => {
    const pool = new BufferPool(64, 2);
    const taken = [pool.take(), pool.take(), pool.take()];
    for (const b of taken) pool.give(b);
    expect(pool.spares).toBe(2);
    pool.give(Buffer.alloc(32));
    pool.give(Buffer.alloc(64).subarray(0, 32));
    expect(pool.spares).toBe(2);
  });

  it('lets the spares go after the idle time', async () => {
    const pool = new BufferPool(64, 4, 50);
    const b = pool.take();
    pool.give(b);
    expect(pool.spares).toBe(1);
    await waitFor('the idle spares to be let go', () => pool.spares === 0, 60_000);
    expect(pool.take()).not.toBe(b);
  });
});
