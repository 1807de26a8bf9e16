/** Group commit: one write per batch, no ack before its sync, a resend waits for the first. */
import { describe, expect, it } from 'vitest';
import { Mutex } from '../../../../replicator/gateway/async-lock.js';
import { GroupCommit } from '../../../../replicator/gateway/group-commit.js';

/** A step whose sync waits until released, recording what happened. */
function steps() {
  const held = new Set<number>();
  const events: string[] = [];
  let release!: () => void;
  const synced = new Promise<void>((r) => {
    release = r;
  });
  const step = (seq: number, fail = false) => ({
    held: () => held.has(seq),
    write: async () => {
      events.push(`write ${seq}`);
      return { segment: 1, offset: seq };
    },
    sync: async () => {
      await synced;
      if (fail) throw new Error('disk gone');
    },
    adopt: () => {
      held.add(seq);
      events.push(`adopt ${seq}`);
    },
  });
  return { events, release, step };
}

describe('GroupCommit', () => {
  it('writes a batch once; a resend during its sync waits for it and is a duplicate', async () => {
    const g = new GroupCommit(new Mutex());
    const s = steps();
    const first = g.append(1, s.step(1));
    const resend = g.append(1, s.step(1));
    s.release();
    expect(await first).toEqual({ duplicate: false });
    expect(await resend).toEqual({ duplicate: true });
    expect(s.events).toEqual(['write 1', 'adopt 1']);
    expect(await g.append(1, s.step(1))).toEqual({ duplicate: true });
  });

  it('gives a failed sync to the first caller and to a waiting resend, and adopts nothing', async () => {
    const g = new GroupCommit(new Mutex());
    const s = steps();
    const first = g.append(2, s.step(2, true));
    const resend = g.append(2, s.step(2, true));
    s.release();
    await expect(first).rejects.toThrow('disk gone');
    await expect(resend).rejects.toThrow('disk gone');
    expect(s.events).toEqual(['write 2']);
  });
});
