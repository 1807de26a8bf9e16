import type { Redis } from 'ioredis';
import type { OperationEvent } from './recovery-contract.js';

/** The stream keeps about this many events; older ones are trimmed as new ones arrive. */
const MAX_EVENTS = 10_000;

/** Appends one event to the operation stream (XADD, capped). */
export async function emitEvent(
  redis: Redis,
  stream: string,
  event: Omit<OperationEvent, 'time'>,
): Promise<string> {
  const e: OperationEvent = { ...event, time: Date.now() };
  const fields: string[] = ['opId', e.opId, 'app', e.app, 'job', e.job, 'type', e.type];
  if (e.step !== undefined) fields.push('step', e.step);
  if (e.progress !== undefined) fields.push('progress', String(e.progress));
  if (e.detail !== undefined) fields.push('detail', e.detail);
  if (e.result !== undefined) fields.push('result', JSON.stringify(e.result));
  if (e.error !== undefined) fields.push('error', JSON.stringify(e.error));
  fields.push('time', String(e.time));
  return (await redis.xadd(stream, 'MAXLEN', '~', MAX_EVENTS, '*', ...fields)) ?? '';
}

/** Decodes one stream entry's field list; undefined when it is not an operation event. */
export function parseEvent(fields: string[]): OperationEvent | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i] ?? '', fields[i + 1] ?? '');
  const opId = m.get('opId');
  const app = m.get('app');
  const job = m.get('job');
  const type = m.get('type');
  if (!opId || !app || !job || (type !== 'started' && type !== 'step' && type !== 'finished')) {
    return undefined;
  }
  const e: OperationEvent = {
    opId,
    app,
    job: job as OperationEvent['job'],
    type,
    time: Number(m.get('time') ?? 0),
  };
  const step = m.get('step');
  if (step !== undefined) e.step = step;
  const progress = m.get('progress');
  if (progress !== undefined) e.progress = Number(progress);
  const detail = m.get('detail');
  if (detail !== undefined) e.detail = detail;
  const result = m.get('result');
  if (result !== undefined) e.result = JSON.parse(result) as NonNullable<OperationEvent['result']>;
  const error = m.get('error');
  if (error !== undefined) e.error = JSON.parse(error) as NonNullable<OperationEvent['error']>;
  return e;
}

/** The id of the stream's newest entry, or `0-0`: follow from here to see only what comes next. */
export async function lastEventId(redis: Redis, stream: string): Promise<string> {
  const last = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

/**
 * Yields one operation's events from `after` on, until its `finished` event or the signal.
 * Blocks on XREAD for at most `blockMs` at a time, so the signal is noticed; `idle` runs
 * between reads (the caller's chance to notice a job that ended without an event).
 */
export async function* followOperation(
  redis: Redis,
  stream: string,
  opId: string,
  {
    after = '0-0',
    job,
    blockMs = 1000,
    signal,
    idle,
  }: {
    after?: string;
    /** Only this job's events (a drill and its cleanup share the op id). */
    job?: string;
    blockMs?: number;
    signal?: AbortSignal;
    idle?: () => Promise<OperationEvent | undefined>;
  } = {},
): AsyncGenerator<OperationEvent> {
  let cursor = after;
  while (!signal?.aborted) {
    const batch = await redis.xread('COUNT', 100, 'BLOCK', blockMs, 'STREAMS', stream, cursor);
    const entries = batch?.[0]?.[1] ?? [];
    for (const [id, fields] of entries) {
      cursor = id;
      const e = parseEvent(fields);
      if (e?.opId !== opId || (job !== undefined && e.job !== job)) continue;
      yield e;
      if (e.type === 'finished') return;
    }
    if (entries.length === 0 && idle) {
      const ended = await idle();
      if (ended) {
        yield ended;
        return;
      }
    }
  }
}
