/** Batch numbers: no gap for the gateway, no reuse after a reopened session. */
import { describe, expect, it } from 'vitest';
import { BatchSequence } from '../../../../replicator/agent/batch-sequence.js';

describe('BatchSequence', () => {
  it('continues after the gateway’s last batch', () => {
    const s = new BatchSequence(41, 40);
    expect(s.take()).toBe(42);
    expect(s.take()).toBe(43);
    expect(s.lastAcked).toBe(40);
  });

  it('takes back only the last number taken (an empty batch), so no gap opens', () => {
    const s = new BatchSequence(0, 0);
    const a = s.take();
    const b = s.take();
    s.giveBack(a);
    expect(s.next).toBe(3);
    s.giveBack(b);
    expect(s.next).toBe(2);
  });

  it('never reuses a number the gateway holds after a reopen', () => {
    const s = new BatchSequence(5, 5);
    s.continueAfter(9);
    expect(s.take()).toBe(10);
    s.continueAfter(3);
    expect(s.take()).toBe(11);
  });

  it('keeps the highest acknowledgement', () => {
    const s = new BatchSequence(0, 7);
    s.acked(9);
    s.acked(8);
    expect(s.lastAcked).toBe(9);
  });
});
