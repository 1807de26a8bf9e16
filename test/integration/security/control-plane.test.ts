// Probes 5 and 6 of issue 15 against a real engine, real Redis and real policy files.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../../core/redis.js';
import { AuditLog } from '../../../engine/audit-log.js';
import type { Engine } from '../../../engine/create-engine.js';
import { readNotices } from '../../../engine/notice-stream.js';
import { RECOVERY_QUEUE, recoveryKeys } from '../../../replicator/jobs/recovery-contract.js';
import {
  command,
  type EngineHome,
  engineHome,
  type Reply,
  startEngine,
  testPrefix,
} from '../../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';

const problem = redisUnavailable();

const FREEZE = `policies:
  - name: failover-freeze
    when: { verb: failover }
    deny: failovers are frozen for the migration
`;
const GRANT_ALL = `policies:
  - name: grant-everything
    when: { known: true }
    allow: true
`;

describe('security: policy enforced when it acts, not only when asked', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let queue: Queue;
  const engines: Engine[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    queue = new Queue(RECOVERY_QUEUE, {
      connection: conn,
      prefix: recoveryKeys(prefix).bullPrefix,
    });
  });

  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    await queue?.close();
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  const engine = async () => {
    const e = await startEngine(h, redis.url, prefix);
    engines.push(e);
    return e;
  };
  const jobs = async () =>
    (await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized']))
      .length;
  const approvalOf = (r: Reply) =>
    r.decision?.outcome === 'approval' ? r.decision.approval : undefined;
  const audit = async () => {
    const out = [];
    for await (const e of new AuditLog(conn, prefix).entries()) out.push(e);
    return out;
  };

  it('probe 5: a freeze added after the first approval stops the second from queuing, and says so', async () => {
    const e = await engine();
    const asked = approvalOf(await e.submit(command('slack:USAM', 'failover web')));
    expect(asked?.status).toBe('pending');
    const id = asked?.id ?? '';
    expect((await e.submit(command('slack:UTOM', `approve ${id}`))).summary).toMatch(/1 of 2/);

    await writeFile(join(h.policies, 'freeze.yaml'), FREEZE);
    expect(await e.reloadPolicies()).toBe(true);

    const last = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(last.ok).toBe(false);
    expect(last.summary).toContain(`Approved ${id}, but failover of web was not started`);
    expect(last.summary).toContain(
      'failovers are frozen for the migration (policy failover-freeze)',
    );
    expect(await jobs()).toBe(0);

    // The approval's thread ends with the refusal; the audit log has the second decision.
    const thread = (await readNotices(conn, prefix))
      .map((n) => n.notice)
      .filter((n) => n.key === `op:${asked?.opId}`);
    const end = thread.at(-1);
    expect(end?.kind).toBe('operation.failed');
    expect(end?.summary).toMatch(/approved \(A-\d+\) but not started: the policies now refuse it/);
    expect(end?.targets).toEqual(['slack:CASK', 'slack:CWEB']);
    const recheck = (await audit()).find(
      (x) => x.type === 'decision' && (x.data as { recheck?: boolean }).recheck === true,
    );
    expect(recheck?.data).toMatchObject({
      approval: id,
      outcome: 'deny',
      policy: 'failover-freeze',
      reason: 'failovers are frozen for the migration',
    });

    // A later engine's sweep of granted approvals does not queue it either.
    await engine().then((e2) => e2.start());
    expect(await jobs()).toBe(0);
    const again = await e.submit(command('slack:UTOM', `approve ${id}`));
    expect(again.summary).toMatch(/refused: the policies now refuse it/);
    expect(await jobs()).toBe(0);
  });

  it('probe 5: an approval rule raised in the meantime is not met by the old count', async () => {
    const e = await engine();
    const asked = approvalOf(await e.submit(command('slack:USAM', 'failover web')));
    const id = asked?.id ?? '';
    await e.submit(command('slack:UTOM', `approve ${id}`));
    const raised = (await import('node:fs/promises')).readFile(
      join(h.policies, 'approvals.yaml'),
      'utf8',
    );
    await writeFile(
      join(h.policies, 'approvals.yaml'),
      (await raised).replace('count: 2', 'count: 3'),
    );
    expect(await e.reloadPolicies()).toBe(true);
    const last = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(last.ok).toBe(false);
    expect(last.summary).toContain('it now needs 3 approval(s) from sre-oncall and has 2');
    expect(await jobs()).toBe(0);
  });

  it('probe 5 (what held): with the policies unchanged, the second approval queues it once', async () => {
    const e = await engine();
    const asked = approvalOf(await e.submit(command('slack:USAM', 'failover web')));
    const id = asked?.id ?? '';
    await e.submit(command('slack:UTOM', `approve ${id}`));
    const last = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(last.ok).toBe(true);
    expect(last.summary).toMatch(/queued as op-/);
    expect(await jobs()).toBe(1);
  });

  it('probe 6: a grant deleted in the same edit as a typo elsewhere is not kept; the engine fails closed', async () => {
    const e = await engine();
    // dan (devs, owns nothing) may not drill shop under the shipped policies.
    expect((await e.submit(command('slack:UDAN', 'drill shop'))).summary).toContain(
      '(policy (default deny))',
    );
    await writeFile(join(h.policies, 'grant-all.yaml'), GRANT_ALL);
    expect(await e.reloadPolicies()).toBe(true);
    const granted = await e.submit(command('slack:UDAN', 'drill shop'));
    expect(granted.summary).toContain('policy grant-everything');

    // One edit: the grant goes, and another file gets a YAML error.
    await rm(join(h.policies, 'grant-all.yaml'));
    await writeFile(join(h.policies, 'schedules.yaml'), 'policies:\n  - name: [oops\n');
    expect(await e.reloadPolicies()).toBe(false);

    const dan = await e.submit(command('slack:UDAN', 'drill shop'));
    expect(dan.ok).toBe(false);
    expect(dan.summary).toMatch(
      /^Denied: no valid policy set is loaded \(.*schedules\.yaml:\d+: .*\); fix the policy files and they reload \(policy \(policies\)\)$/,
    );
    expect(await jobs()).toBe(1); // only the drill granted before
    // Fail closed for every action, as at start-up: even what the shipped policies allow.
    const sam = await e.submit(command('slack:USAM', 'drill web'));
    expect(sam.summary).toBe(dan.summary);
    const fresh = await engine();
    const atStart = await fresh.submit(command('slack:USAM', 'drill web'));
    expect(atStart.summary).toBe(dan.summary);
    // Reading still works, and says why nothing may act.
    const list = await e.submit(command('slack:UDAN', 'policy', { args: { sub: 'list' } }));
    expect(list.summary).toMatch(
      /have 1 problem\(s\): every action is denied until they are fixed/,
    );
    expect(list.details?.join('\n')).toMatch(/refused: .*schedules\.yaml:\d+/);
    const explain = await e.submit(
      command('slack:USAM', 'policy', { args: { sub: 'explain', words: ['drill', 'web'] } }),
    );
    expect(explain.summary).toMatch(/^Denied, whatever the policies below say/);
    expect((await e.submit(command('slack:UDAN', 'status'))).ok).toBe(true);

    // Fixed: the shipped rules decide again, and the deleted grant stays gone.
    await writeFile(join(h.policies, 'schedules.yaml'), 'policies: []\n');
    expect(await e.reloadPolicies()).toBe(true);
    expect((await e.submit(command('slack:UDAN', 'drill shop'))).summary).toContain(
      '(policy (default deny))',
    );
    expect((await e.submit(command('slack:USAM', 'drill web'))).ok).toBe(true);

    // The whole directory gone: no grant survives it either.
    await rm(h.policies, { recursive: true });
    expect(await e.reloadPolicies()).toBe(false);
    const gone = await e.submit(command('slack:USAM', 'drill web'));
    expect(gone.ok).toBe(false);
    expect(gone.summary).toContain('cannot read the policy directory');
  });

  it('probe 6: a policy file broken while an approval waits refuses to queue it', async () => {
    const e = await engine();
    const asked = approvalOf(await e.submit(command('slack:USAM', 'failover web')));
    const id = asked?.id ?? '';
    await e.submit(command('slack:UTOM', `approve ${id}`));
    await writeFile(join(h.policies, 'operations.yaml'), 'policies: {{{\n');
    expect(await e.reloadPolicies()).toBe(false);
    const last = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(last.ok).toBe(false);
    expect(last.summary).toMatch(/operations\.yaml:\d+/);
    expect(await jobs()).toBe(0);
  });
});
