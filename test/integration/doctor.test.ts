import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { checkCertificates, type Finding } from '../../cli/doctor/doctor-checks.js';
import { homePaths } from '../../core/home.js';
import { fuseUnavailable } from '../../replicator/recovery/fuse-mount.js';
import { dr, freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const DAY = 86_400_000;

interface Report {
  ok: boolean;
  failures: number;
  findings: Finding[];
}

describe('dr doctor', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;
  const extra: TestHome[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    t = await testHome();
  });

  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
    for (const h of extra.splice(0)) await h.cleanup();
    await t?.cleanup();
  });

  async function doctor(env: NodeJS.ProcessEnv): Promise<{ code: number; report: Report }> {
    const r = await dr(['doctor', '--json'], { DR_HOME: t.home, DR_LOG_LEVEL: 'silent', ...env });
    return { code: r.code, report: JSON.parse(r.out) as Report };
  }
  const find = (r: Report, check: string) => r.findings.find((f) => f.check === check);

  it('passes on a healthy home: Redis and its version, gateway and clock, certificates, policies', async () => {
    redis = await startRedis();
    await t.startGateway();
    const { code, report } = await doctor({ REDIS_URL: redis.url });
    expect(report.findings.filter((f) => f.status === 'fail')).toEqual([]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(find(report, 'redis')?.detail).toMatch(
      /^Redis \d+\.\d+\.\d+ at 127\.0\.0\.1:\d+ answers/,
    );
    expect(find(report, 'gateway')?.status).toBe('ok');
    expect(find(report, 'clock')?.detail).toMatch(
      /gateway clock minus this machine's: -?\d+\.\d s/,
    );
    expect(find(report, 'cert gateway')?.detail).toMatch(/^valid for \d+ more days/);
    expect(find(report, 'policies')?.detail).toMatch(/lint-clean/);
    // Instant recovery: ok where FUSE works here, otherwise a warning that says why.
    const fuse = await fuseUnavailable();
    expect(find(report, 'instant')).toMatchObject(
      fuse === undefined
        ? { status: 'ok', detail: expect.stringMatching(/FUSE works/) }
        : { status: 'warn', detail: expect.stringContaining(fuse) },
    );
    // The plain output names each check; exit code and text agree.
    const text = await dr(['doctor'], {
      DR_HOME: t.home,
      REDIS_URL: redis.url,
      DR_LOG_LEVEL: 'silent',
    });
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/ok {4}redis {9}Redis/);
  });

  it('fails with a remedy for each problem: no Redis, no gateway, a bad policy, a foreign certificate', async () => {
    const other = await testHome();
    extra.push(other);
    const theirs = homePaths(other.home);
    const mine = homePaths(t.home);
    await copyFile(theirs.agentCert, mine.agentCert);
    await copyFile(theirs.agentKey, mine.agentKey);
    await writeFile(
      join(t.home, 'policies', 'broken.yaml'),
      'policies:\n  - name: x\n    when: {}\n    allow: maybe\n',
    );
    const { code, report } = await doctor({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    const redisF = find(report, 'redis');
    expect(redisF?.status).toBe('fail');
    expect(redisF?.detail).toMatch(/^cannot reach Redis at 127\.0\.0\.1:\d+/);
    expect(redisF?.remedy).toContain('start redis-server');
    const gw = find(report, 'gateway');
    expect(gw?.status).toBe('fail');
    expect(gw?.remedy).toContain('dr gateway');
    const cert = find(report, 'cert agent');
    expect(cert?.status).toBe('fail');
    expect(cert?.detail).toContain("is not signed by this home's CA");
    const pol = find(report, 'policies');
    expect(pol?.status).toBe('fail');
    expect(pol?.detail).toContain('broken.yaml');
    expect(pol?.remedy).toContain('dr policy lint');
    for (const f of report.findings.filter((x) => x.status !== 'ok')) expect(f.remedy).toBeTruthy();
  });

  it('says when Redis is not configured at all', async () => {
    const { code, report } = await doctor({ REDIS_URL: '' });
    expect(code).toBe(1);
    expect(find(report, 'redis')?.detail).toBe(
      'REDIS_URL is not set and no `dr up` runs on this home',
    );
  });

  it('warns before certificates expire and fails once they have', async () => {
    const config = await t.config();
    const ok = await checkCertificates(config);
    const days = Number(/valid for (\d+) more days/.exec(ok[1]?.detail ?? '')?.[1]);
    expect(days).toBeGreaterThan(30);
    const soon = await checkCertificates(config, Date.now() + (days - 10) * DAY);
    expect(soon.find((f) => f.check === 'cert gateway')).toMatchObject({ status: 'warn' });
    expect(soon.find((f) => f.check === 'cert gateway')?.detail).toMatch(/expires in (9|10) days/);
    const late = await checkCertificates(config, Date.now() + (days + 2) * DAY);
    expect(late.find((f) => f.check === 'cert agent')).toMatchObject({ status: 'fail' });
    expect(late.find((f) => f.check === 'cert agent')?.detail).toContain('expired on');
  });
});
