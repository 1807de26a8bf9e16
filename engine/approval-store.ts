import type { Redis } from 'ioredis';
import type { ApprovalState, Surface } from './contract.js';
import type { CardFacts } from './gather-card-facts.js';

/** What Redis keeps of an approval: the state people see plus what starting the job needs. */
export interface ApprovalRecord extends ApprovalState {
  /** The person behind the requester (never counts as an approver). */
  requestedPerson: string;
  expiresAtMs: number;
  /** The policy that asked for it. */
  policy: string;
  /** Where the request came from; its notices go there. */
  channel?: string;
  /** The surface it was asked on: the operation is judged again, as asked, before it is queued. */
  surface?: Surface;
  /** Why the requester asked (`--reason`), shown on the card. */
  reason?: string;
  /** The operation's own arguments, passed to the job once granted. */
  args: { point?: number; keepMs?: number; emergency?: boolean };
  /** The operation is a plan's run: `app` is the plan's name. */
  plan?: boolean;
  /** Set once the job was enqueued (or refused): `queued`, or `refused: <why>`. */
  enqueued?: string;
}

/**
 * The outcome of a press. `counted`: one more approval, still pending; `granted`: this press met
 * the count (exactly one press ever gets it); the rest are refusals that change nothing.
 */
export type PressOutcome =
  | 'counted'
  | 'granted'
  | 'repeat'
  | 'self'
  | 'ineligible'
  | 'expired'
  | 'rejected'
  | 'granted-already'
  | 'cancelled'
  | 'missing'
  /** This call found the approval past its expiry and marked it expired. */
  | 'expired-now'
  /** This reject press rejected it. */
  | 'rejected-now'
  /** An expiry check found it still within its time. */
  | 'pending';

// One script per change, so that concurrent presses through any number of processes are
// serialised by Redis: the count is met exactly once, by exactly one press.
const PRESS = `
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing', ''} end
local a = cjson.decode(raw)
local kind, actor, person, eligible, at, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if a.status == 'granted' then return {'granted-already', raw} end
if a.status ~= 'pending' then return {a.status, raw} end
if now >= tonumber(a.expiresAtMs) then
  a.status = 'expired'
  raw = cjson.encode(a)
  redis.call('SET', KEYS[1], raw, 'KEEPTTL')
  return {'expired-now', raw}
end
if kind == 'expire' then return {'pending', raw} end
if kind == 'cancel' then
  a.status = 'cancelled'
  raw = cjson.encode(a)
  redis.call('SET', KEYS[1], raw, 'KEEPTTL')
  return {'cancelled', raw}
end
if person == a.requestedPerson then return {'self', raw} end
if eligible ~= '1' then return {'ineligible', raw} end
local list = a.approvals
if type(list) ~= 'table' then list = {} end
for _, x in ipairs(list) do
  if x.person == person then return {'repeat', raw} end
end
if kind == 'reject' then
  a.status = 'rejected'
  a.rejectedBy = { actor = actor, person = person, at = at, reason = reason }
  raw = cjson.encode(a)
  redis.call('SET', KEYS[1], raw, 'KEEPTTL')
  return {'rejected-now', raw}
end
table.insert(list, { actor = actor, person = person, at = at })
a.approvals = list
local out = 'counted'
if #list >= tonumber(a.required) then
  a.status = 'granted'
  out = 'granted'
end
raw = cjson.encode(a)
redis.call('SET', KEYS[1], raw, 'KEEPTTL')
return {out, raw}
`;

/** Keeps approvals in Redis: `<prefix>approval:<id>` (JSON), ids from a counter, an index by op. */
export class ApprovalStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key = (id: string) => `${this.prefix}approval:${id}`;

  /** A new short id: A-1, A-2, … */
  async nextId(): Promise<string> {
    return `A-${await this.redis.incr(`${this.prefix}approval:seq`)}`;
  }

  async create(record: ApprovalRecord): Promise<void> {
    // Kept 30 days after its expiry, for history.
    const ttl = Math.max(1, Math.ceil((record.expiresAtMs - Date.now()) / 1000) + 30 * 86_400);
    await this.redis
      .multi()
      .set(this.key(record.id), JSON.stringify(record), 'EX', ttl)
      .set(`${this.prefix}approval:op:${record.opId}`, record.id, 'EX', ttl)
      .zadd(`${this.prefix}approvals`, Date.now(), record.id)
      .exec();
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    const raw = await this.redis.get(this.key(id));
    return raw === null ? undefined : decode(raw);
  }

  /** The approval that would start operation `opId`, if any. */
  async byOp(opId: string): Promise<ApprovalRecord | undefined> {
    const id = await this.redis.get(`${this.prefix}approval:op:${opId}`);
    return id === null ? undefined : this.get(id);
  }

  /** The newest approvals, newest first. */
  async recent(count: number): Promise<ApprovalRecord[]> {
    const ids = await this.redis.zrevrange(`${this.prefix}approvals`, 0, count - 1);
    const out: ApprovalRecord[] = [];
    for (const id of ids) {
      const a = await this.get(id);
      if (a) out.push(a);
    }
    return out;
  }

  /** Approve or reject as `person`; `eligible` says whether the person is in an eligible group. */
  async press(
    kind: 'approve' | 'reject',
    id: string,
    p: { actor: string; person: string; eligible: boolean; now: number; reason?: string },
  ): Promise<{ outcome: PressOutcome; approval?: ApprovalRecord }> {
    return this.run(kind, id, p.actor, p.person, p.eligible ? '1' : '0', p.now, p.reason ?? '');
  }

  /** Marks a pending approval expired when its time has come; no change otherwise. */
  expire(id: string, now: number) {
    return this.run('expire', id, '', '', '0', now, '');
  }

  /** Withdraws a pending approval (its operation was cancelled). */
  cancel(id: string, now: number) {
    return this.run('cancel', id, '', '', '0', now, '');
  }

  /**
   * Keeps the card's facts as last shown, beside the approval (not in it, so that presses,
   * which rewrite the approval in Lua, never race with a refresh of the facts).
   */
  async saveCard(id: string, card: CardFacts): Promise<void> {
    await this.redis.set(`${this.key(id)}:card`, JSON.stringify(card), 'EX', 31 * 86_400);
  }

  /** The card's facts as last shown, if any were gathered. */
  async card(id: string): Promise<CardFacts | undefined> {
    const raw = await this.redis.get(`${this.key(id)}:card`);
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as CardFacts;
    } catch {
      return undefined; // unreadable: the next gathering writes a good one
    }
  }

  /** Records that the granted approval's job was enqueued (or could not be). */
  async markEnqueued(id: string, how: string): Promise<void> {
    const a = await this.get(id);
    if (!a) return;
    await this.redis.set(this.key(id), JSON.stringify({ ...a, enqueued: how }), 'KEEPTTL');
  }

  private async run(
    kind: string,
    id: string,
    actor: string,
    person: string,
    eligible: string,
    now: number,
    reason: string,
  ): Promise<{ outcome: PressOutcome; approval?: ApprovalRecord }> {
    const [outcome, raw] = (await this.redis.eval(
      PRESS,
      1,
      this.key(id),
      kind,
      actor,
      person,
      eligible,
      new Date(now).toISOString(),
      String(now),
      reason,
    )) as [string, string];
    return {
      outcome: outcome as PressOutcome,
      ...(raw ? { approval: decode(raw) } : {}),
    };
  }
}

/** Lua's cjson writes an empty list as `{}`: lists are restored here. */
function decode(raw: string): ApprovalRecord {
  const a = JSON.parse(raw) as ApprovalRecord;
  if (!Array.isArray(a.approvals)) a.approvals = [];
  if (!Array.isArray(a.groups)) a.groups = [];
  if (a.args === null || typeof a.args !== 'object' || Array.isArray(a.args)) a.args = {};
  return a;
}
