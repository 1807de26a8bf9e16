import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { controlKeys, type Notice } from './contract.js';

/** The notice stream keeps about this many entries. */
const MAX_NOTICES = 10_000;

/** Writes notices to `<prefix>notices` (field `notice`, JSON) for the surfaces to render. */
export class NoticeStream {
  readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.key = controlKeys(prefix).notices;
  }

  /** Publishes one notice; targets are de-duplicated, and a notice with no target is still written (for audit and the console). */
  async publish(n: Omit<Notice, 'id' | 'time'>): Promise<Notice> {
    const notice: Notice = {
      ...n,
      targets: [...new Set(n.targets)],
      id: `n-${this.now().toString(36)}${randomBytes(3).toString('hex')}`,
      time: this.now(),
    };
    await this.redis.xadd(
      this.key,
      'MAXLEN',
      '~',
      MAX_NOTICES,
      '*',
      'notice',
      JSON.stringify(notice),
    );
    return notice;
  }
}

/** Reads notices written after `after` (a stream id); for tests and the console. */
export async function readNotices(
  redis: Redis,
  prefix: string,
  after = '0-0',
): Promise<{ id: string; notice: Notice }[]> {
  const entries = await redis.xrange(
    controlKeys(prefix).notices,
    after === '0-0' ? '-' : `(${after}`,
    '+',
  );
  const out: { id: string; notice: Notice }[] = [];
  for (const [id, fields] of entries) {
    const i = fields.indexOf('notice');
    const text = i >= 0 ? fields[i + 1] : undefined;
    if (text) out.push({ id, notice: JSON.parse(text) as Notice });
  }
  return out;
}
