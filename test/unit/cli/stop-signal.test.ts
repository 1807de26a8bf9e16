// The stop deadline every long-running part shares: DR_STOP_TIMEOUT checked, the deadline kept.
import { afterEach, describe, expect, it } from 'vitest';
import { type StopSignal, stopSignal, stopTimeoutMs } from '../../../cli/stop-signal.js';
import { waitFor } from '../../helpers/wait-for.js';

describe('stop signal', () => {
  const made: StopSignal[] = [];
  afterEach(() => {
    for (const s of made.splice(0)) s.dispose();
  });

  it('reads DR_STOP_TIMEOUT, 10 s when unset, and refuses a bad one naming the remedy', () => {
    expect(stopTimeoutMs({})).toBe(10_000);
    expect(stopTimeoutMs({ DR_STOP_TIMEOUT: '' })).toBe(10_000);
    expect(stopTimeoutMs({ DR_STOP_TIMEOUT: '30s' })).toBe(30_000);
    for (const bad of ['soon', '500ms', '-1s']) {
      expect(() => stopTimeoutMs({ DR_STOP_TIMEOUT: bad })).toThrow(
        `DR_STOP_TIMEOUT "${bad}" is not a duration of at least 1s. To resolve, set it like 10s, or unset it`,
      );
    }
    expect(() =>
      stopSignal({ part: 'dr worker', abandons: 'x', env: { DR_STOP_TIMEOUT: 'soon' } }),
    ).toThrow(/DR_STOP_TIMEOUT/);
  });

  it('starts the stop at the first signal and exits at the deadline, saying what it leaves', async () => {
    const lines: string[] = [];
    const exits: number[] = [];
    const s = stopSignal({
      part: 'dr worker',
      abandons: 'the job is resumed elsewhere',
      env: { DR_STOP_TIMEOUT: '1s' },
      warn: (l) => lines.push(l),
      exit: (c) => exits.push(c),
    });
    made.push(s);
    expect(s.signal.aborted).toBe(false);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await s.requested).toBe('SIGTERM');
    expect(s.signal.aborted).toBe(true);
    await waitFor('the deadline', () => exits.length > 0);
    expect(exits).toEqual([0]);
    expect(lines).toEqual([
      'dr worker: did not stop within 1 s of SIGTERM; exiting now (the job is resumed elsewhere)',
    ]);
  });

  it('a second signal stops at once; a finished stop disarms the deadline', async () => {
    const exits: number[] = [];
    const before = process.listenerCount('SIGINT');
    let now = 0;
    const s = stopSignal({
      part: 'dr serve',
      abandons: 'x',
      env: {},
      warn: () => undefined,
      exit: (c) => exits.push(c),
    });
    made.push(s);
    s.onSecond(() => {
      now++;
    });
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGINT', 'SIGINT');
    expect(now).toBe(1);
    s.dispose();
    expect(process.listenerCount('SIGINT')).toBe(before);
    expect(exits).toEqual([]);
  });
});
