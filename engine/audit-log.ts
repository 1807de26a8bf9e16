import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { controlKeys } from './contract.js';

export type AuditType = 'command' | 'decision' | 'approval' | 'job' | 'result' | 'policy' | 'alert';

/** One entry of the hash-chained audit log. */
export interface AuditEntry {
  seq: number;
  /** ms since epoch. */
  time: number;
  type: AuditType;
  actor?: string;
  data: unknown;
  /** Hash of the previous entry (64 zeros for the first). */
  prev: string;
  /** sha256 over prev and this entry's other fields. */
  hash: string;
}

export const GENESIS = '0'.repeat(64);

/** The hash an entry must carry: sha256 of the previous hash and the entry's canonical JSON. */
export function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  const body = JSON.stringify({
    seq: e.seq,
    time: e.time,
    type: e.type,
    actor: e.actor ?? null,
    data: e.data ?? null,
    prev: e.prev,
  });
  return createHash('sha256').update(e.prev).update('\n').update(body).digest('hex');
}

// Appends only when the chain's head is still what the caller hashed against (compare and swap).
// With a third key, appends only once: an entry already written under that key is not repeated.
const APPEND = `
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 'dup' end
local head = redis.call('GET', KEYS[2])
if not head then head = ARGV[1] .. ' 0' end
if head ~= ARGV[2] then return head end
redis.call('XADD', KEYS[1], '*', 'entry', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5]) end
return 'ok'
`;

/** An entry written at most once: `key` names it (within the log), remembered `ttlSeconds`. */
export interface AppendOnce {
  key: string;
  ttlSeconds: number;
}

/**
 * The append-only audit stream `<prefix>audit`. Each entry carries the hash of the one before, so
 * an edited, removed or reordered entry breaks the chain (`verifyAudit`). Appends from many
 * processes are serialised by a compare-and-swap on the chain's head (`<prefix>audit:head`).
 */
export class AuditLog {
  private readonly stream: string;
  private readonly headKey: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.stream = controlKeys(prefix).audit;
    this.headKey = `${this.stream}:head`;
  }

  /** Appends one entry; within a process appends keep their call order. */
  append(type: AuditType, data: unknown, actor?: string): Promise<AuditEntry> {
    return this.enqueue(() => this.appendNow(type, data, actor)) as Promise<AuditEntry>;
  }

  /**
   * Appends one entry unless one was already appended under `once.key` (by this process or any
   * other sharing the log): undefined then. Atomic with the append, so two writers racing for
   * the same record leave one entry.
   */
  appendOnce(
    once: AppendOnce,
    type: AuditType,
    data: unknown,
    actor?: string,
  ): Promise<AuditEntry | undefined> {
    return this.enqueue(() => this.appendNow(type, data, actor, once));
  }

  private enqueue(fn: () => Promise<AuditEntry | undefined>): Promise<AuditEntry | undefined> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined); // the caller sees the failure; the queue goes on
    return next;
  }

  private async appendNow(
    type: AuditType,
    data: unknown,
    actor?: string,
    once?: AppendOnce,
  ): Promise<AuditEntry | undefined> {
    const keys = once
      ? [this.stream, this.headKey, `${this.stream}:once:${once.key}`]
      : [this.stream, this.headKey];
    let head = (await this.redis.get(this.headKey)) ?? `${GENESIS} 0`;
    for (let attempt = 0; attempt < 1000; attempt++) {
      const [prev = GENESIS, seqText = '0'] = head.split(' ');
      const base = {
        seq: Number(seqText) + 1,
        time: this.now(),
        type,
        ...(actor !== undefined ? { actor } : {}),
        data,
        prev,
      };
      const entry: AuditEntry = { ...base, hash: entryHash(base) };
      const r = (await this.redis.eval(
        APPEND,
        keys.length,
        ...keys,
        GENESIS,
        head,
        JSON.stringify(entry),
        `${entry.hash} ${entry.seq}`,
        String(once?.ttlSeconds ?? 0),
      )) as string;
      if (r === 'ok') return entry;
      if (r === 'dup') return undefined;
      head = r;
    }
    throw new Error(
      'audit log: could not append after 1000 attempts (the chain head keeps moving)',
    );
  }

  /** Every entry in order (the stream is never trimmed). */
  async *entries(batch = 500): AsyncGenerator<AuditEntry> {
    let start = '-';
    for (;;) {
      const page = await this.redis.xrange(this.stream, start, '+', 'COUNT', batch);
      for (const [, fields] of page) {
        const i = fields.indexOf('entry');
        const text = i >= 0 ? fields[i + 1] : undefined;
        yield text ? (JSON.parse(text) as AuditEntry) : ({ seq: -1 } as AuditEntry);
      }
      const last = page[page.length - 1];
      if (!last || page.length < batch) return;
      start = `(${last[0]}`;
    }
  }

  /** The chain's head as recorded: `<hash> <seq>`. */
  async head(): Promise<{ hash: string; seq: number }> {
    const [hash = GENESIS, seq = '0'] = (
      (await this.redis.get(this.headKey)) ?? `${GENESIS} 0`
    ).split(' ');
    return { hash, seq: Number(seq) };
  }
}

/** A break in the chain: which entry, and what is wrong with it. */
export interface AuditProblem {
  seq: number;
  /** 1-based position in the log as read. */
  position: number;
  problem: string;
}

/**
 * Checks a sequence of entries: each hash is right, each links to the one before, the sequence
 * numbers run without gaps; and, when `head` is given, the last entry is the recorded head.
 */
export async function verifyAudit(
  entries: AsyncIterable<AuditEntry> | Iterable<AuditEntry>,
  head?: { hash: string; seq: number },
): Promise<{ count: number; problems: AuditProblem[] }> {
  const problems: AuditProblem[] = [];
  let prev = GENESIS;
  let expectSeq = 1;
  let count = 0;
  for await (const e of entries) {
    count++;
    const { hash, ...rest } = e;
    if (typeof e.seq !== 'number' || e.seq < 1) {
      problems.push({ seq: e.seq, position: count, problem: 'not an audit entry' });
      continue;
    }
    if (entryHash(rest) !== hash)
      problems.push({
        seq: e.seq,
        position: count,
        problem: 'edited: its hash does not match its content',
      });
    if (e.seq !== expectSeq)
      problems.push({
        seq: e.seq,
        position: count,
        problem:
          e.seq > expectSeq
            ? `entries ${expectSeq}..${e.seq - 1} are missing (removed)`
            : `out of order: seq ${e.seq} after ${expectSeq - 1}`,
      });
    else if (e.prev !== prev)
      problems.push({
        seq: e.seq,
        position: count,
        problem: 'does not link to the entry before it (reordered or replaced)',
      });
    prev = hash;
    expectSeq = e.seq + 1;
  }
  if (head && head.seq > 0 && (head.seq !== expectSeq - 1 || head.hash !== prev))
    problems.push({
      seq: head.seq,
      position: count,
      problem: `the log ends at seq ${expectSeq - 1} but its recorded head is seq ${head.seq}: entries at the end were removed or edited`,
    });
  return { count, problems };
}
