import type { Redis } from 'ioredis';
import { errorMessage } from '../core/errors.js';
import { type Logger, silentLog } from '../core/log.js';
import { controlKeys, type Notice } from '../engine/contract.js';

export interface NoticeReaderOptions {
  /** A connection of its own: XREADGROUP blocks it. */
  redis: Redis;
  prefix?: string;
  /** Consumer group: one per surface (`bot:slack`), so several bot processes share the work. */
  group: string;
  /** This process's name in the group. */
  consumer: string;
  /** Notices this surface shows; the rest are acknowledged unread. */
  accepts: (notice: Notice) => boolean;
  handle: (notice: Notice) => Promise<void>;
  /** Remove the group on close (a console's private group). */
  dropGroupOnClose?: boolean;
  /** How long a notice may sit unacknowledged with a crashed consumer before another takes it. */
  claimAfterMs?: number;
  /** Attempts before a notice that keeps failing is given up (and logged). */
  maxAttempts?: number;
  log?: Logger;
}

type Entry = [id: string, fields: string[]];

/**
 * Reads the engine's notice stream with a consumer group: each notice is handled once per surface,
 * acknowledged only when handled, retried when handling failed, and taken over from a consumer
 * that died holding it.
 */
export class NoticeReader {
  private readonly key: string;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly attempts = new Map<string, number>();

  constructor(private readonly o: NoticeReaderOptions) {
    this.key = controlKeys(o.prefix).notices;
  }

  async start(): Promise<void> {
    try {
      // `$`: a new surface starts with what happens from now on, not the stream's history.
      await this.o.redis.xgroup('CREATE', this.key, this.o.group, '$', 'MKSTREAM');
    } catch (err) {
      if (!errorMessage(err).includes('BUSYGROUP')) throw err;
    }
    this.loop = this.run();
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.o.dropGroupOnClose) await this.o.redis.xgroup('DESTROY', this.key, this.o.group);
  }

  private async run(): Promise<void> {
    const log = this.o.log ?? silentLog;
    let lastClaim = 0;
    while (!this.stopped) {
      try {
        if (Date.now() - lastClaim > (this.o.claimAfterMs ?? 30_000) / 2) {
          lastClaim = Date.now();
          await this.reclaim();
        }
        const res = (await this.o.redis.xreadgroup(
          'GROUP',
          this.o.group,
          this.o.consumer,
          'COUNT',
          50,
          'BLOCK',
          500,
          'STREAMS',
          this.key,
          '>',
        )) as [string, Entry[]][] | null;
        for (const [, entries] of res ?? []) await this.each(entries);
      } catch (err) {
        if (this.stopped) break;
        log.warn({ err: errorMessage(err) }, 'reading notices failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Our own pending notices (a failed attempt) and those a dead consumer left behind. */
  private async reclaim(): Promise<void> {
    const [, entries] = (await this.o.redis.xautoclaim(
      this.key,
      this.o.group,
      this.o.consumer,
      this.o.claimAfterMs ?? 30_000,
      '0-0',
      'COUNT',
      50,
    )) as [string, Entry[]];
    await this.each(entries.filter((e) => Array.isArray(e[1])));
  }

  private async each(entries: Entry[]): Promise<void> {
    const log = this.o.log ?? silentLog;
    for (const [id, fields] of entries) {
      const notice = parseNotice(id, fields);
      if (!notice) {
        log.warn({ id }, 'notice stream entry is not a Notice; skipped');
        await this.o.redis.xack(this.key, this.o.group, id);
        continue;
      }
      if (!this.o.accepts(notice)) {
        await this.o.redis.xack(this.key, this.o.group, id);
        continue;
      }
      try {
        await this.o.handle(notice);
        this.attempts.delete(id);
        await this.o.redis.xack(this.key, this.o.group, id);
      } catch (err) {
        const n = (this.attempts.get(id) ?? 0) + 1;
        this.attempts.set(id, n);
        if (n >= (this.o.maxAttempts ?? 5)) {
          log.error(
            { id, kind: notice.kind, err: errorMessage(err) },
            'notice given up after retries',
          );
          this.attempts.delete(id);
          await this.o.redis.xack(this.key, this.o.group, id);
        } else {
          log.warn(
            { id, kind: notice.kind, err: errorMessage(err), attempt: n },
            'notice failed; will retry',
          );
        }
      }
    }
  }
}

function parseNotice(id: string, fields: string[]): Notice | undefined {
  const i = fields.indexOf('notice');
  const raw = i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
  if (raw === undefined) return undefined;
  try {
    const n = JSON.parse(raw) as Partial<Notice>;
    if (typeof n.kind !== 'string' || typeof n.summary !== 'string' || typeof n.key !== 'string')
      return undefined;
    return { ...n, id: n.id || id, targets: Array.isArray(n.targets) ? n.targets : [] } as Notice;
  } catch {
    return undefined; // not JSON: reported by the caller as not a Notice
  }
}

/** Writes a notice to the stream (the surfaces' own `surface.down`; tests). */
export async function publishNotice(
  redis: Redis,
  notice: Omit<Notice, 'id'>,
  prefix?: string,
): Promise<string> {
  const id = await redis.xadd(controlKeys(prefix).notices, '*', 'notice', JSON.stringify(notice));
  return id ?? '';
}
