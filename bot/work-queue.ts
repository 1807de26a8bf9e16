import { errorMessage } from '../core/errors.js';
import { type Logger, silentLog } from '../core/log.js';

/**
 * Work that follows an acknowledgement, run a few at a time. A burst of commands then costs each
 * sender only its ack: the engine's work waits its turn instead of competing with the next acks.
 */
export class WorkQueue {
  private running = 0;
  private readonly waiting: (() => Promise<void>)[] = [];
  private idle: (() => void)[] = [];

  constructor(
    private readonly concurrency = 4,
    private readonly log: Logger = silentLog,
  ) {}

  push(work: () => Promise<void>): void {
    this.waiting.push(work);
    this.next();
  }

  /** Resolves when nothing is running or waiting (for a clean close). */
  drained(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private next(): void {
    while (this.running < this.concurrency) {
      const work = this.waiting.shift();
      if (!work) break;
      this.running++;
      // setImmediate: the acks already waiting in the event loop go out before this work starts.
      setImmediate(() => {
        work()
          .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'chat work failed'))
          .finally(() => {
            this.running--;
            this.next();
            if (this.running === 0 && this.waiting.length === 0) {
              for (const r of this.idle.splice(0)) r();
            }
          });
      });
    }
  }
}
