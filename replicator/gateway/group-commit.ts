/**
 * Durable batch appends: each batch is written under the app's mutex and made durable outside it,
 * so batches that arrive together share one fsync and none is acknowledged before its fsync; a
 * resend of a batch still on its way to the disk waits for it.
 */
import type { Mutex } from './async-lock.js';
import type { LogPosition } from './segment-log.js';

export class GroupCommit {
  /** Batches written but not yet fsync'd, by sequence number. */
  readonly #inFlight = new Map<number, Promise<void>>();

  constructor(private readonly mutex: Mutex) {}

  /**
   * Appends batch `seq` once: `held` (under the mutex) says whether it is stored already, `write`
   * (under the mutex) writes it, `sync` makes it durable, `adopt` records it once durable.
   */
  async append(
    seq: number,
    step: {
      held: () => boolean;
      write: () => Promise<LogPosition>;
      sync: () => Promise<void>;
      adopt: (at: LogPosition) => void;
    },
  ): Promise<{ duplicate: boolean }> {
    let durable!: () => void;
    let failed!: (err: unknown) => void;
    const settled = new Promise<void>((resolve, reject) => {
      durable = resolve;
      failed = reject;
    });
    settled.catch(() => undefined); // observed by resends only; the first caller gets the error itself
    const outcome = await this.mutex.run(async () => {
      if (step.held()) return 'duplicate' as const;
      const earlier = this.#inFlight.get(seq);
      if (earlier) return { wait: earlier };
      this.#inFlight.set(seq, settled);
      try {
        return await step.write();
      } catch (err) {
        this.#inFlight.delete(seq);
        failed(err);
        throw err;
      }
    });
    if (outcome === 'duplicate') return { duplicate: true };
    if ('wait' in outcome) {
      await outcome.wait;
      return { duplicate: true };
    }
    try {
      await step.sync();
      step.adopt(outcome);
      durable();
    } catch (err) {
      failed(err);
      throw err;
    } finally {
      this.#inFlight.delete(seq);
    }
    return { duplicate: false };
  }
}
