/** Runs async sections one at a time, in call order (a promise chain). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    // The chain must go on after a failed section; the caller still sees the failure via `result`.
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * Many readers or one exclusive holder. Readers are admitted whenever no
 * exclusive holder runs, so a reader may nest shared sections safely; an
 * exclusive holder waits until no reader is left.
 */
export class ReadWriteLock {
  #readers = 0;
  #exclusive = false;
  #sharedWaiters: Array<() => void> = [];
  #exclusiveWaiters: Array<() => void> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((grant) => {
      this.#sharedWaiters.push(grant);
      this.#pump();
    });
    try {
      return await fn();
    } finally {
      this.#readers--;
      this.#pump();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((grant) => {
      this.#exclusiveWaiters.push(grant);
      this.#pump();
    });
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.#pump();
    }
  }

  #pump(): void {
    if (this.#exclusive) return;
    for (const grant of this.#sharedWaiters.splice(0)) {
      this.#readers++;
      grant();
    }
    if (this.#readers > 0) return;
    const grant = this.#exclusiveWaiters.shift();
    if (grant) {
      this.#exclusive = true;
      grant();
    }
  }
}

/** At most `limit` sections at once; the others wait, in call order. */
export class Semaphore {
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1))
      throw new RangeError(`a semaphore needs a limit of 1 or more, not ${limit}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running < this.limit) this.#running++;
    else await new Promise<void>((go) => this.#waiting.push(go));
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, or is freed.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
