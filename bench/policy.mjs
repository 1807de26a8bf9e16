#!/usr/bin/env node
// Benchmark: policy decision latency. 200 policies (20 files of 10, a mix of allow, deny and
// approval rules over verbs, apps, tiers, groups, owners, time windows and RPO) are loaded and
// validated; then 10 000 commands of random people, verbs and apps are decided.
//   1. decision: facts in, decision out (evaluatePolicies), the figure the target is about;
//   2. submit: the whole engine path of a --dry-run command (identity, app state read from Redis,
//      policies, two audit appends), 2 000 commands, when redis-server is installed.
//   node bench/policy.mjs [--commands 10000] [--policies 200] [--smoke] [--json]
//   --smoke: 20 policies and 300 commands, the same path in a second or two.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  createEngine,
  evaluatePolicies,
  loadPolicyDir,
  parseConfig,
} from '../dist/bench/bench-api.js';
import { freePort, say } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    commands: { type: 'string', default: '10000' },
    policies: { type: 'string', default: '200' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const COMMANDS = args.smoke ? 300 : Number(args.commands);
const POLICIES = args.smoke ? 20 : Number(args.policies);

// A deterministic generator, so runs compare.
let seed = 42;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const APPS = Array.from({ length: 50 }, (_, i) => `app-${i}`);
const GROUPS = ['sre-oncall', 'devs', 'dba', 'ops', 'security'];
const OPS = ['drill', 'failover', 'failback'];
const OTHER = ['approve', 'reject', 'cancel', 'cleanup', 'ack', 'pause', 'resume'];

const work = mkdtempSync(join(tmpdir(), 'lifeboat-bench-policy-'));
const dir = join(work, 'policies');
mkdirSync(dir);
for (let f = 0; f < POLICIES / 10; f++) {
  const lines = ['timezone: Asia/Shanghai', 'policies:'];
  for (let k = 0; k < 10; k++) {
    const i = f * 10 + k;
    const app = APPS[i % APPS.length];
    const verb = OPS[i % 3];
    lines.push(`  - name: p-${i}`);
    lines.push('    when:');
    lines.push(`      verb: ${i % 7 === 0 ? `[${OPS.join(', ')}]` : verb}`);
    if (i % 5 !== 4) lines.push(`      app: ${app}`);
    else lines.push(`      tier: ${pick(['prod', 'staging', 'dev'])}`);
    switch (i % 4) {
      case 0:
        lines.push(`      groups: ${pick(GROUPS)}`, '    allow: true');
        break;
      case 1:
        lines.push(
          `      isOwner: true`,
          `      hour: { greaterThanInclusive: ${i % 12} }`,
          '    allow: true',
        );
        break;
      case 2:
        lines.push(
          `      emergency: false`,
          '      any:',
          `        - weekday: { in: [sat, sun] }`,
          `        - hour: { lessThan: ${1 + (i % 6)} }`,
          `    deny: p-${i} keeps ${app} still at this hour`,
        );
        break;
      default:
        lines.push(
          `      rpoSeconds: { lessThan: ${30 + i} }`,
          `    approvals: { count: ${1 + (i % 3)}, from: [${pick(GROUPS)}], expires: 30m }`,
        );
    }
  }
  writeFileSync(join(dir, `f-${f}.yaml`), `${lines.join('\n')}\n`);
}
writeFileSync(
  join(dir, 'respond.yaml'),
  'policies:\n  - name: respond\n    when: { verb: [approve, reject, cancel, cleanup, ack], known: true }\n    allow: true\n',
);

const t0 = performance.now();
const loaded = await loadPolicyDir(dir, { knownGroups: new Set(GROUPS) });
const loadMs = performance.now() - t0;
if (!loaded.set) {
  for (const p of loaded.problems) say(`${p.file}:${p.line}: ${p.reason}`);
  process.exit(1);
}
const set = loaded.set;
const now0 = Date.parse('2026-11-25T02:00:00Z');
const commandFacts = () => {
  const app = pick(APPS);
  const verb = rand() < 0.8 ? pick(OPS) : pick(OTHER);
  const groups = GROUPS.filter(() => rand() < 0.3);
  return {
    verb,
    app,
    tier: ['prod', 'staging', 'dev'][APPS.indexOf(app) % 3],
    owners: ['alice'],
    isOwner: rand() < 0.2,
    actor: 'slack:U1',
    person: 'someone',
    known: true,
    groups,
    surface: 'slack',
    emergency: rand() < 0.1,
    dryRun: false,
    rpoSeconds: rand() * 120,
    operationsInProgress: 0,
    now: now0 + Math.floor(rand() * 7 * 86_400_000),
  };
};
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const summary = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    p50: pct(s, 50),
    p99: pct(s, 99),
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
};

// warm up the per-verb rule engines
for (let i = 0; i < 500; i++) await evaluatePolicies(set, commandFacts());
const times = [];
const cpuTimes = [];
const outcomes = {};
for (let i = 0; i < COMMANDS; i++) {
  const f = commandFacts();
  const c = process.cpuUsage();
  const s = performance.now();
  const ev = await evaluatePolicies(set, f);
  times.push(performance.now() - s);
  const used = process.cpuUsage(c);
  cpuTimes.push((used.user + used.system) / 1000);
  outcomes[ev.outcome] = (outcomes[ev.outcome] ?? 0) + 1;
}
const decision = summary(times);
// CPU time of this process per decision: what the decision costs, without the time other
// processes on a busy machine held the CPU.
const decisionCpu = summary(cpuTimes);

// The whole submit path, with a real Redis.
let submit;
if (spawnSync('redis-server', ['--version']).status === 0) {
  const port = await freePort();
  const redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  try {
    await sleep(300);
    const people = GROUPS.map((g, i) => `  p${i}: { ids: ['slack:U${i}'], groups: [${g}] }`).join(
      '\n',
    );
    const apps = APPS.map(
      (a, i) =>
        `  ${a}:\n    tier: ${['prod', 'staging', 'dev'][i % 3]}\n    volumes: [{ name: data, path: /tmp/${a}.img }]`,
    ).join('\n');
    const config = parseConfig(`people:\n${people}\napps:\n${apps}\npolicies: ${dir}\n`);
    const engine = await createEngine({
      home: work,
      config,
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: 'bench:',
      watchPolicies: false,
    });
    const n = Math.min(2000, COMMANDS);
    const st = [];
    for (let i = 0; i < n + 200; i++) {
      const c = {
        id: `b-${i}`,
        actor: `slack:U${i % GROUPS.length}`,
        surface: 'slack',
        verb: pick(OPS),
        app: pick(APPS),
        args: { dryRun: true },
        at: new Date().toISOString(),
      };
      const s = performance.now();
      await engine.submit(c);
      if (i >= 200) st.push(performance.now() - s);
    }
    await engine.close();
    submit = { commands: n, ...summary(st) };
  } finally {
    redis.kill('SIGTERM');
  }
} else say('bench:policy: redis-server is missing; the submit figures are skipped');
rmSync(work, { recursive: true, force: true });

const result = {
  policies: set.policies.length,
  files: set.files.length,
  loadMs,
  commands: COMMANDS,
  outcomes,
  decisionMs: decision,
  decisionCpuMs: decisionCpu,
  loadAverage: loadavg()[0],
  submitMs: submit ?? null,
  target: { p99Ms: 5, met: decision.p99 <= 5 },
};
if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  const f = (x) => x.toFixed(3);
  say(
    `bench:policy: ${result.policies} policies in ${result.files} files, loaded and validated in ${loadMs.toFixed(0)} ms`,
  );
  say(
    `  decision (facts in, decision out), ${COMMANDS} commands: p50 ${f(decision.p50)} ms, p99 ${f(decision.p99)} ms, max ${f(decision.max)} ms (target p99 <= 5 ms: ${result.target.met ? 'met' : 'NOT met'})`,
  );
  say(
    `  decision CPU time of this process: p50 ${f(decisionCpu.p50)} ms, p99 ${f(decisionCpu.p99)} ms (load average ${result.loadAverage.toFixed(1)} on ${cpus().length} cores)`,
  );
  say(
    `  outcomes: ${Object.entries(outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  if (submit)
    say(
      `  submit (engine, Redis, audit; --dry-run), ${submit.commands} commands: p50 ${f(submit.p50)} ms, p99 ${f(submit.p99)} ms, max ${f(submit.max)} ms`,
    );
}
