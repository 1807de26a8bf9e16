import { type FileHandle, open } from 'node:fs/promises';

interface Entry {
  handle: Promise<FileHandle>;
  refs: number;
  dropped: boolean;
}

/**
 * A few read-only file handles kept open for pread, least recently used
 * first out. A handle in use is never closed under its reader: eviction and
 * `drop` close it when its last user returns.
 */
export class FileHandleCache {
  readonly #entries = new Map<string, Entry>();

  constructor(readonly max = 16) {}

  async use<T>(path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.#entries.get(path);
    if (entry) this.#entries.delete(path);
    else {
      const created: Entry = { handle: open(path, 'r'), refs: 0, dropped: false };
      created.handle.catch(() => {
        // The caller sees the open error through `await entry.handle`; forget the entry so a later call retries.
        if (this.#entries.get(path) === created) this.#entries.delete(path);
      });
      entry = created;
    }
    this.#entries.set(path, entry); // re-insert: Map order is the LRU order
    entry.refs++;
    try {
      return await fn(await entry.handle);
    } finally {
      entry.refs--;
      if (entry.dropped && entry.refs === 0) await closeQuietly(entry);
      await this.#trim();
    }
  }

  /** Forgets a file (deleted or rewritten); its handle closes once unused. */
  async drop(path: string): Promise<void> {
    const entry = this.#entries.get(path);
    if (!entry) return;
    this.#entries.delete(path);
    entry.dropped = true;
    if (entry.refs === 0) await closeQuietly(entry);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#entries.keys()].map((p) => this.drop(p)));
  }

  async #trim(): Promise<void> {
    for (const [path, entry] of this.#entries) {
      if (this.#entries.size <= this.max) return;
      if (entry.refs === 0) await this.drop(path);
    }
  }
}

async function closeQuietly(entry: Entry): Promise<void> {
  try {
    await (await entry.handle).close();
  } catch {
    // A read-only handle has nothing to flush; a failed open or close leaves nothing to clean up.
  }
}
