import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** The platform message that shows a notice key in one channel, and the newest notice it shows. */
export interface MessageRef {
  /** Slack `ts`, DingTalk card `outTrackId`. */
  ref: string;
  /** `time` of the newest notice shown; older notices arriving late do not overwrite it. */
  time: number;
}

const KEEP_SECONDS = 30 * 86_400;

/**
 * Remembers, in Redis, which message shows which notice key in which channel, so notices sharing a
 * key update one message, whichever bot process handles them. A short lock per key and channel
 * makes "post the first message" happen once.
 */
export class MessageMap {
  constructor(
    private readonly redis: Redis,
    private readonly base: string,
  ) {}

  private keyOf(channel: string, key: string): string {
    return `${this.base}${channel}|${key}`;
  }

  async get(channel: string, key: string): Promise<MessageRef | undefined> {
    const raw = await this.redis.get(this.keyOf(channel, key));
    return raw ? (JSON.parse(raw) as MessageRef) : undefined;
  }

  /**
   * Under the lock: `create` when no message exists yet; `update` when the notice (at `time`) is
   * not older than what the message shows. Returns the message's ref and whether it was changed.
   */
  async upsert(
    channel: string,
    key: string,
    time: number,
    create: () => Promise<string>,
    update: (ref: string) => Promise<void>,
  ): Promise<{ ref: string; changed: boolean; created: boolean }> {
    return this.locked(channel, key, async () => {
      const found = await this.get(channel, key);
      if (found) {
        if (time < found.time) return { ref: found.ref, changed: false, created: false };
        await update(found.ref);
        await this.set(channel, key, { ref: found.ref, time });
        return { ref: found.ref, changed: true, created: false };
      }
      const ref = await create();
      await this.set(channel, key, { ref, time });
      return { ref, changed: true, created: true };
    });
  }

  private async set(channel: string, key: string, value: MessageRef): Promise<void> {
    await this.redis.set(this.keyOf(channel, key), JSON.stringify(value), 'EX', KEEP_SECONDS);
  }

  private async locked<T>(channel: string, key: string, body: () => Promise<T>): Promise<T> {
    const lock = `${this.keyOf(channel, key)}|lock`;
    const token = randomUUID();
    const until = Date.now() + 15_000;
    // Held only across one or two Web API calls; a holder that died frees it after 20 s.
    while ((await this.redis.set(lock, token, 'PX', 20_000, 'NX')) !== 'OK') {
      if (Date.now() > until)
        throw new Error(`message for ${key} in ${channel} is locked; will retry`);
      await new Promise((r) => setTimeout(r, 25));
    }
    try {
      return await body();
    } finally {
      await this.redis.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        1,
        lock,
        token,
      );
    }
  }
}
