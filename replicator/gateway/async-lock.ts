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
