import type { Redis } from 'ioredis';
import { DrError } from '../../core/errors.js';
import type { AppLockHolder } from './recovery-contract.js';

/** Takes the lock when it is free or already ours (same op id); answers the holder otherwise. */
const TAKE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, holder = pcall(cjson.decode, cur)
  if ok and holder.opId == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, cur}
  end
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {1, ARGV[1]}
`;

/** Refreshes or drops the lock only while it is ours. */
const OWNED = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, holder = pcall(cjson.decode, cur)
if not (ok and holder.opId == ARGV[1]) then return 0 end
if ARGV[2] == 'release' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`;

/**
 * One operation per app at a time: a Redis key set with NX semantics and an expiry that the
 * holder refreshes. A crashed holder's lock runs out; a retried job with the same op id takes
 * its own lock back.
 */
export class AppLock {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly app: string,
  ) {}

  /** Takes the lock for `holder`, or throws the conflict with who holds it and the remedy. */
  async take(holder: AppLockHolder, ttlMs: number): Promise<void> {
    const [ok, current] = (await this.redis.eval(
      TAKE,
      1,
      this.key,
      JSON.stringify(holder),
      holder.opId,
      String(ttlMs),
    )) as [number, string];
    if (ok === 1) return;
    throw conflict(this.app, parseHolder(current));
  }

  /** Extends the lock; false when it is no longer ours (expired and taken by another). */
  async refresh(opId: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(OWNED, 1, this.key, opId, String(ttlMs))) === 1;
  }

  async release(opId: string): Promise<void> {
    await this.redis.eval(OWNED, 1, this.key, opId, 'release');
  }

  async holder(): Promise<AppLockHolder | undefined> {
    const v = await this.redis.get(this.key);
    return v === null ? undefined : parseHolder(v);
  }
}

function parseHolder(text: string): AppLockHolder | undefined {
  try {
    return JSON.parse(text) as AppLockHolder;
  } catch {
    return undefined; // not ours to read: the conflict message says so
  }
}

export function conflict(app: string, h: AppLockHolder | undefined): DrError {
  return new DrError(
    h
      ? `${app} is busy: ${h.job} ${h.opId} requested by ${h.requestedBy} at ${h.since} is still running`
      : `${app} is busy: another operation holds its lock`,
    {
      code: 'operation_conflict',
      subject: app,
      remedy: h
        ? `wait for ${h.opId} to finish, or stop it with \`dr cancel ${h.opId}\``
        : 'wait for the other operation to finish',
    },
  );
}
