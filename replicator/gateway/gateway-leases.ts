/**
 * Which gateway serves each app when several share one bucket: a lease per app in Redis, taken
 * when free (atomically, with a fencing token from a counter), renewed while the gateway lives,
 * and lapsing `ttlMs` after a gateway dies, when another takes it. A holder checks its token (and
 * renews) before each write to the bucket; the catalog's conditional write fences the rest.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

/** Takes the lease when free (or renews it when ours): answers 1 or 0 and the holder. */
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if v then
  if cjson.decode(v).id == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, v}
  end
  return {0, v}
end
local token = redis.call('INCR', KEYS[2])
v = cjson.encode({id = ARGV[1], address = ARGV[2], token = token})
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
return {1, v}`;

/** Renews the lease if it is still this gateway's with this token: 1, else 0. */
const RENEW = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local h = cjson.decode(v)
if h.id ~= ARGV[1] or tostring(h.token) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/** Ends the lease if it is still this gateway's. */
const RELEASE = `
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).id == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

/** A gateway holding an app's lease: its id, the address agents reach it at, its fencing token. */
export interface LeaseHolder {
  id: string;
  address: string;
  token: number;
}

export interface GatewayLeasesOptions {
  redis: Redis;
  /** Key prefix (REDIS_PREFIX) and the bucket's URL: gateways of one bucket share leases. */
  namespace: string;
  /** HOST:PORT agents reach this gateway at (named in redirects). */
  address: string;
  /** A dead gateway's apps are free this long after its last renewal. */
  ttlMs?: number;
  /** Told of each app whose lease this gateway lost (stolen, or not renewed in time). */
  onLost?: (app: string) => void;
  log?: Logger;
}

export class GatewayLeases {
  /** This process's id: a restarted gateway is another holder. */
  readonly id = randomUUID();
  readonly ttlMs: number;
  readonly #held = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor(private readonly o: GatewayLeasesOptions) {
    this.ttlMs = o.ttlMs ?? 5000;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 500) {
      throw new DrError(`a gateway lease of ${this.ttlMs} ms is too short`, {
        code: 'config_invalid',
        subject: 'lease ttl',
        remedy: 'use at least 500 ms (default 5000)',
      });
    }
    this.#timer = setInterval(() => void this.#renewAll(), Math.floor(this.ttlMs / 3));
    this.#timer.unref();
  }

  get address(): string {
    return this.o.address;
  }

  /** Apps whose lease this gateway holds. */
  held(): string[] {
    return [...this.#held.keys()].sort();
  }

  holds(app: string): boolean {
    return this.#held.has(app);
  }

  /** Takes the app's lease if it is free or ours: ours (with the token), or the other holder. */
  async acquire(
    app: string,
  ): Promise<{ ours: true; token: number } | { ours: false; holder: LeaseHolder }> {
    if (this.#closed) throw this.#lostError(app);
    const [ok, raw] = (await this.#redis(() =>
      this.o.redis.eval(
        ACQUIRE,
        2,
        this.#key(app),
        `${this.#key(app)}:epoch`,
        this.id,
        this.o.address,
        this.ttlMs,
      ),
    )) as [number, string];
    const holder = parseHolder(raw);
    if (ok === 1) {
      if (!this.#held.has(app))
        this.o.log?.info({ app, token: holder.token }, 'took the app lease');
      this.#held.set(app, holder.token);
      return { ours: true, token: holder.token };
    }
    return { ours: false, holder };
  }

  /** Who holds the app's lease now (undefined: nobody, it is free). */
  async holder(app: string): Promise<LeaseHolder | undefined> {
    const raw = (await this.#redis(() => this.o.redis.get(this.#key(app)))) as string | null;
    return raw ? parseHolder(raw) : undefined;
  }

  /**
   * Renews the lease and throws unless this gateway still holds it with the token it took:
   * called before each write to the bucket.
   */
  async check(app: string): Promise<void> {
    const token = this.#held.get(app);
    if (token === undefined) throw this.#lostError(app);
    const ok = await this.#redis(() =>
      this.o.redis.eval(RENEW, 1, this.#key(app), this.id, String(token), this.ttlMs),
    );
    if (ok !== 1) {
      this.#lost(app);
      throw this.#lostError(app);
    }
  }

  async release(app: string): Promise<void> {
    this.#held.delete(app);
    await this.#redis(() => this.o.redis.eval(RELEASE, 1, this.#key(app), this.id)).catch(
      () => undefined, // the lease lapses by itself
    );
  }

  /** Stops renewing and gives every lease back (a clean stop hands the apps over at once). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.all(this.held().map((app) => this.release(app)));
  }

  async #renewAll(): Promise<void> {
    for (const [app, token] of this.#held) {
      try {
        const ok = await this.o.redis.eval(
          RENEW,
          1,
          this.#key(app),
          this.id,
          String(token),
          this.ttlMs,
        );
        if (ok !== 1) this.#lost(app);
      } catch (err) {
        // Redis unreachable: the lease lapses there too, so stop serving the app before it does.
        this.o.log?.warn({ app, err: errorMessage(err) }, 'cannot renew the app lease');
        this.#lost(app);
      }
    }
  }

  #lost(app: string): void {
    if (!this.#held.delete(app)) return;
    this.o.log?.warn({ app }, 'lost the app lease; another gateway serves it now');
    this.o.onLost?.(app);
  }

  #key(app: string): string {
    return `${this.o.namespace}:lease:${app}`;
  }

  #lostError(app: string): DrError {
    return new DrError(`this gateway no longer holds the lease of app ${app}`, {
      code: 'lease_lost',
      subject: app,
      remedy: 'the agent opens a new session with the gateway that serves the app now',
    });
  }

  async #redis<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new DrError(`the gateway cannot reach Redis for app leases: ${errorMessage(err)}`, {
        code: 'redis_unreachable',
        subject: 'REDIS_URL',
        remedy: 'check that Redis is up; with several gateways on one bucket, leases live there',
        cause: err,
      });
    }
  }
}

function parseHolder(raw: string): LeaseHolder {
  const h = JSON.parse(raw) as Partial<LeaseHolder>;
  return { id: String(h.id), address: String(h.address), token: Number(h.token) };
}
