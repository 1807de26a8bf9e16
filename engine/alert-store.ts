import type { Redis } from 'ioredis';

/** One raised alert (an RPO breach, a silent agent), until it is resolved. */
export interface AlertRecord {
  /** Short id people type: `ack AL-4`. */
  id: string;
  kind: 'rpo' | 'agent-silent';
  app: string;
  policy: string;
  raisedAt: number;
  ackedBy?: string;
  ackedAt?: number;
  escalatedAt?: number;
  resolvedAt?: number;
}

// Acknowledges once: a second ack by anyone changes nothing and says who acknowledged first.
const ACK = `
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing', ''} end
local a = cjson.decode(raw)
if a.ackedBy then return {'already', raw} end
if a.resolvedAt then return {'resolved', raw} end
a.ackedBy = ARGV[1]
a.ackedAt = tonumber(ARGV[2])
raw = cjson.encode(a)
redis.call('SET', KEYS[1], raw, 'KEEPTTL')
return {'acked', raw}
`;

/**
 * Alerts in Redis: `<prefix>alert:<id>` (JSON) and, while it is open, `<prefix>alert:open:<kind>:<app>`
 * holding its id, so one breach raises one alert however many monitors look.
 */
export class AlertStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key = (id: string) => `${this.prefix}alert:${id}`;
  private openKey = (kind: string, app: string) => `${this.prefix}alert:open:${kind}:${app}`;

  async get(id: string): Promise<AlertRecord | undefined> {
    const raw = await this.redis.get(this.key(id));
    return raw === null ? undefined : (JSON.parse(raw) as AlertRecord);
  }

  async open(kind: AlertRecord['kind'], app: string): Promise<AlertRecord | undefined> {
    const id = await this.redis.get(this.openKey(kind, app));
    return id === null ? undefined : this.get(id);
  }

  /** Raises an alert unless one is open for the same kind and app; undefined when one was. */
  async raise(
    kind: AlertRecord['kind'],
    app: string,
    policy: string,
    now: number,
  ): Promise<AlertRecord | undefined> {
    const id = `AL-${await this.redis.incr(`${this.prefix}alert:seq`)}`;
    const taken = await this.redis.set(this.openKey(kind, app), id, 'NX');
    if (taken !== 'OK') return undefined;
    const a: AlertRecord = { id, kind, app, policy, raisedAt: now };
    await this.redis.set(this.key(id), JSON.stringify(a), 'EX', 30 * 86_400);
    return a;
  }

  async ack(
    id: string,
    by: string,
    now: number,
  ): Promise<{ outcome: 'acked' | 'already' | 'resolved' | 'missing'; alert?: AlertRecord }> {
    const [outcome, raw] = (await this.redis.eval(ACK, 1, this.key(id), by, String(now))) as [
      string,
      string,
    ];
    return {
      outcome: outcome as 'acked',
      ...(raw ? { alert: JSON.parse(raw) as AlertRecord } : {}),
    };
  }

  async update(a: AlertRecord): Promise<void> {
    await this.redis.set(this.key(a.id), JSON.stringify(a), 'KEEPTTL');
  }

  /** Closes the open alert of `kind` for `app`; returns it, or undefined when none was open. */
  async resolve(
    kind: AlertRecord['kind'],
    app: string,
    now: number,
  ): Promise<AlertRecord | undefined> {
    const id = await this.redis.getdel(this.openKey(kind, app));
    if (id === null) return undefined;
    const a = await this.get(id);
    if (!a) return undefined;
    a.resolvedAt = now;
    await this.update(a);
    return a;
  }
}
