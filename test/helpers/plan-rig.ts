// The rig of the plan-run chat tests: a home with four served apps (db, api, web, and bad, whose
// health check can never pass), the plans shop (db, a hook, api, a manual step, web) and broken
// (db, bad, web), `dr gateway`, `dr worker` and `dr serve` on real Redis. Each surface's test
// brings its chat's emulator.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFailed } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from './lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from './processes.js';
import {
  exists,
  killVolumeServers,
  protectServedApp,
  recoveryEnv,
  volumeServerPids,
} from './recovery-rig.js';
import { startRedis, type TestRedis } from './redis-server.js';

export interface PlanRunRecord {
  run: {
    phase: string;
    groups: { apps: { app: string; state: string; opId?: string; ops: string[] }[] }[];
  };
}

export interface PlanRig {
  t: TestHome;
  redis: TestRedis;
  /** The environment of every `dr` process of the rig, the surface's variables included. */
  env: NodeJS.ProcessEnv;
  prefix: string;
  worker: DrProcess;
  /** `dr serve` (engine and the surface), and the HOST:PORT it listens on. */
  serve: DrProcess;
  listen: string;
  /** On the test's failure, prints `chat()` (what the surface's emulator saw) and the logs' tails. */
  explainFailure: (chat: () => string) => void;
  /** Kills the worker (SIGKILL) and starts another. */
  restartWorker: () => Promise<void>;
  /** The lines the apps' fence and unfence commands and the plan's hook wrote (`fences.log`, …). */
  lines: (file: 'fences.log' | 'unfences.log' | 'hook.log') => Promise<string[]>;
  /** `dr plan status OP --json`. */
  planStatus: (opId: string) => Promise<PlanRunRecord>;
  /** Whether the recovery queue holds a job of this id. */
  hasJob: (jobId: string) => Promise<boolean>;
  /** The time of an operation's `started` or `finished` event (not its cleanup's). */
  eventTime: (opId: string, type: 'started' | 'finished') => Promise<number>;
  /**
   * The run rolled back: every app's state (the last one `lastApp`: a drill never touched it) and
   * no server or recovery directory left.
   */
  expectRolledBack: (opId: string, lastApp?: string) => Promise<void>;
  stop: () => Promise<void>;
}

const workerArgs = ['worker', '--concurrency', '2', '--lock-duration', '5s'];

/**
 * Starts the rig with `surface` added to the environment and `people` (name → ids and groups)
 * (and `channels`) added to dr.yaml; `console` lets `dr chat --as` switch person, for the console's test. `dr
 * serve` is up once it prints `serveReady` (the surface's line).
 */
export async function startPlanRig(o: {
  prefixLetter: string;
  surface: NodeJS.ProcessEnv;
  serveReady: RegExp;
  people: Record<string, { ids: string[]; groups: string[] }>;
  allowConsoleAs?: boolean;
  /** dr.yaml's `channels` (alerts, each app's), where notices go besides the asking channel. */
  channels?: { alerts?: string[]; apps?: Record<string, string[]> };
}): Promise<PlanRig> {
  const redis = await startRedis();
  const t = await testHome();
  const r = recoveryEnv(t.home, redis.url, o.prefixLetter);
  const env = { ...r.env, DR_LOG_LEVEL: 'info', ...o.surface };
  const rig: PlanRig = {
    t,
    redis,
    env,
    prefix: r.prefix,
    worker: undefined as unknown as DrProcess,
    serve: undefined as unknown as DrProcess,
    listen: `127.0.0.1:${await freePort()}`,
    explainFailure: (chat) =>
      onTestFailed(() => {
        process.stderr.write(
          `${chat()}\n--- serve\n${rig.serve.output().slice(-5000)}\n--- worker\n${rig.worker.output().slice(-8000)}\n`,
        );
      }),
    restartWorker: async () => {
      await rig.worker.kill9();
      rig.worker = startDr(workerArgs, env);
      await rig.worker.waitFor(/worker ready/);
    },
    lines: async (name) =>
      (await readFile(join(t.dir, name), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    planStatus: async (opId) => {
      const s = await dr(['--home', t.home, 'plan', 'status', opId, '--json'], env);
      expect(s.err).toBe('');
      return JSON.parse(s.out) as PlanRunRecord;
    },
    hasJob: async (jobId) => {
      const conn = connectRedis(redis.url, 'test');
      try {
        const bull = r.prefix.replace(/:$/, '');
        return (await conn.exists(`${bull}:lifeboat-recovery:${jobId}`)) === 1;
      } finally {
        conn.disconnect();
      }
    },
    eventTime: async (opId, type) => {
      const conn = connectRedis(redis.url, 'test');
      try {
        for (const [, f] of await conn.xrange(`${r.prefix}events`, '-', '+')) {
          const m = new Map<string, string>();
          for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i] ?? '', f[i + 1] ?? '');
          if (m.get('opId') === opId && m.get('type') === type && m.get('job') !== 'cleanup')
            return Number(m.get('time'));
        }
        return Number.NaN;
      } finally {
        conn.disconnect();
      }
    },
    expectRolledBack: async (opId, lastApp = 'rolled-back') => {
      const after = await rig.planStatus(opId);
      expect(after.run.phase).toBe('rolled-back');
      expect(after.run.groups.map((g) => g.apps.map((a) => a.state))).toEqual([
        ['rolled-back'],
        ['rolled-back'],
        [lastApp],
      ]);
      expect(await volumeServerPids(t.dir)).toEqual([]);
      const recovery = join(t.home, 'recovery');
      expect((await exists(recovery)) ? await readdir(recovery) : []).toEqual([]);
    },
    stop: async () => {
      await stopAll();
      await killVolumeServers(t.dir);
      await redis.stop();
      await t.cleanup();
    },
  };
  try {
    const g = startDr(['gateway'], env);
    await g.waitFor(/publishing replication state/);
    const protect = async (name: string, check?: string) => {
      const log = (what: string) => `echo ${name} >> ${join(t.dir, `${what}.log`)}`;
      await protectServedApp(t, name, {
        ...(check ? { check, checkTimeout: '3s' } : {}),
        extra: ['--tier', 'dev', '--quiesce-timeout', '1s', '--fence', log('fences')],
        more: ['--unfence', log('unfences')],
      });
    };
    for (const app of ['db', 'api', 'web']) await protect(app);
    // Its check asks a port nothing listens on: its recovery fails, as a broken tier would.
    await protect('bad', `http://127.0.0.1:${await freePort()}/health`);
    await updateConfig(t.home, (doc) => {
      for (const [name, p] of Object.entries(o.people))
        doc.setIn(['people', name], doc.createNode(p));
      if (o.allowConsoleAs) doc.setIn(['console'], doc.createNode({ allowAs: true }));
      if (o.channels) doc.setIn(['channels'], doc.createNode(o.channels));
    });
    await mkdir(join(t.home, 'plans'));
    await writeFile(
      join(t.home, 'plans', 'shop.yaml'),
      [
        'description: the shop, database first',
        'groups:',
        '  - apps: [db]',
        '    then:',
        `      - hook: echo "$DR_PLAN $DR_VERB" >> ${join(t.dir, 'hook.log')}`,
        '        timeout: 30s',
        '  - apps: [api]',
        '    then:',
        '      - manual: DNS switched — continue',
        '  - apps: [web]',
        '',
      ].join('\n'),
    );
    await writeFile(
      join(t.home, 'plans', 'broken.yaml'),
      'groups:\n  - apps: [db]\n  - apps: [bad]\n  - apps: [web]\n',
    );
    rig.worker = startDr(workerArgs, env);
    await rig.worker.waitFor(/worker ready/);
    rig.serve = startDr(['serve', '--listen', rig.listen], env);
    await rig.serve.waitFor(o.serveReady, 60_000);
    return rig;
  } catch (err) {
    await rig.stop();
    throw err;
  }
}
