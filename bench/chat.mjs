#!/usr/bin/env node
// Benchmark: the chat path. A real `dr serve` (engine + Slack HTTP receiver), `dr gateway`,
// `dr worker` and an app on the local provider, with Slack played by test/fakes/slack-web-api.ts.
//  1. ack latency: rounds of 50 concurrent signed `/dr status web` slash commands, each timed from
//     sending to the HTTP answer (Slack allows 3 s; target p99 <= 200 ms);
//  2. approval to start: drills that need two approvals (a bench policy); time from sending the
//     second Approve press to the job's `started` event on the events stream (target <= 500 ms).
//   node bench/chat.mjs [--rounds 3] [--drills 5] [--smoke] [--json]   (needs redis-server; run after build)
//   --smoke: one round of 10 commands and one approved drill: the same path in seconds.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { bin, freePort, needCommand, pct, root, startProcess } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    drills: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const ROUNDS = args.smoke ? 1 : Number(args.rounds);
const DRILLS = args.smoke ? 1 : Number(args.drills);
const CONCURRENT = args.smoke ? 10 : 50;
const serverScript = join(root, 'test/fixtures/volume-server.mjs');
needCommand('bench:chat', 'redis-server');

// The Slack emulator is TypeScript under test/: bundle it next to node_modules so `ws` resolves.
const cache = join(root, 'node_modules/.cache/lifeboat-bench');
mkdirSync(cache, { recursive: true });
execFileSync(
  join(root, 'node_modules/.bin/rolldown'),
  [
    join(root, 'test/fakes/slack-web-api.ts'),
    '--file',
    join(cache, 'slack-web-api.mjs'),
    '--format',
    'esm',
    '--platform',
    'node',
    '--external',
    'ws',
  ],
  { stdio: 'ignore' },
);
const { SlackEmulator } = await import(join(cache, 'slack-web-api.mjs'));
const { Redis } = await import('ioredis');
const { parseDocument } = await import('yaml');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-chat-'));
const children = [];
const f = (n) => (Number.isFinite(n) ? n.toFixed(1) : '-');

const start = (cmd, argv, env, name) => startProcess(children, cmd, argv, env, name);

async function until(what, probe, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const slack = new SlackEmulator();
let events;
try {
  await slack.start();
  const redisPort = await freePort();
  const redisServer = start(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    process.env,
    'redis',
  );
  await redisServer.waitFor(/Ready to accept connections/);
  const home = join(work, 'home');
  const prefix = 'bench:';
  const env = {
    ...process.env,
    DR_HOME: home,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DR_REDIS_PREFIX: prefix,
    DR_LOG_LEVEL: 'warn',
    SLACK_BOT_TOKEN: slack.token,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
  };
  execFileSync(process.execPath, [bin, 'init', '--gateway', `127.0.0.1:${await freePort()}`], {
    env,
  });
  const image = join(work, 'web.img');
  const data = Buffer.alloc(1024 * 1024);
  data.write('lifeboat-marker-bench\n');
  randomBytes(256 * 1024).copy(data, 512 * 1024);
  writeFileSync(image, data);
  const appPort = await freePort();
  execFileSync(
    process.execPath,
    [
      bin,
      'app',
      'add',
      'web',
      '--volume',
      `data=${image}`,
      '--tier',
      'prod',
      '--quiesce-freeze',
      'true',
      '--quiesce-thaw',
      'true',
      '--start',
      `exec node ${serverScript} ${appPort} 0 ${work}`,
      '--check',
      `http://127.0.0.1:${appPort}/health`,
    ],
    { env },
  );
  const config = join(home, 'dr.yaml');
  const doc = parseDocument(readFileSync(config, 'utf8'));
  for (const p of ['sam', 'tom', 'uma'])
    doc.setIn(
      ['people', p],
      doc.createNode({ ids: [`slack:U${p.toUpperCase()}`], groups: ['sre-oncall'] }),
    );
  doc.setIn(['apps', 'web', 'rpoObjective'], '1h');
  writeFileSync(config, doc.toString());
  // Policies are data: drills of web need two approvals here, so approvals can be timed repeatedly.
  writeFileSync(
    join(home, 'policies', 'bench-drill-approvals.yaml'),
    'policies:\n  - name: bench-drill-two-approvals\n    description: drills need two on-call approvals (bench:chat only)\n    when:\n      verb: drill\n    approvals:\n      count: 2\n      from: [sre-oncall]\n      expires: 30m\n',
  );
  const gateway = start(process.execPath, [bin, 'gateway'], env, 'gateway');
  await gateway.waitFor(/publishing replication state/);
  execFileSync(process.execPath, [bin, 'agent', '--app', 'web', '--once'], {
    env,
    stdio: 'ignore',
  });
  const worker = start(process.execPath, [bin, 'worker', '--concurrency', '2'], env, 'worker');
  await worker.waitFor(/worker ready/);
  const listen = `127.0.0.1:${await freePort()}`;
  const serve = start(process.execPath, [bin, 'serve', '--listen', listen], env, 'serve');
  await serve.waitFor(/Slack: on/);
  events = `http://${listen}/slack/events`;

  // 1. ack latency
  const timeOne = async (text, user) => {
    const body = slack.slashCommand(text, { user, channel: 'CBENCH' });
    const t0 = performance.now();
    const r = await slack.send(events, body);
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`slash command answered ${r.status}`);
    return ms;
  };
  for (let i = 0; i < 5; i++) await timeOne('status web', 'USAM'); // warm-up
  const acks = [];
  for (let round = 0; round < ROUNDS; round++) {
    const batch = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) => timeOne('status web', i % 2 ? 'USAM' : 'UTOM')),
    );
    acks.push(...batch);
    await until(
      'the answers of the round',
      () => slack.responses.length >= 5 + (round + 1) * CONCURRENT,
      120_000,
    );
  }

  // 2. second approval press → job started
  const redis = new Redis(env.REDIS_URL);
  const toStart = [];
  const pressAcks = [];
  for (let d = 0; d < DRILLS; d++) {
    const channel = `CDRILL${d}`;
    await slack.send(events, slack.slashCommand('drill web --keep 1s', { user: 'USAM', channel }));
    const card = await until('the approval card', () => slack.channelMessages(channel)[0]);
    await slack.send(events, slack.buttonPress(card, 0, { user: 'UTOM' }));
    await until('the first approval', () =>
      slack.ephemerals.some((e) => e.args.channel === channel && e.args.user === 'UTOM'),
    );
    const last = (await redis.xrevrange(`${prefix}events`, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    const t0 = performance.now();
    const sent = slack
      .send(events, slack.buttonPress(card, 0, { user: 'UUMA' }))
      .then(() => pressAcks.push(performance.now() - t0));
    let started;
    for (let from = last; started === undefined; ) {
      const res = await redis.xread('BLOCK', 10_000, 'STREAMS', `${prefix}events`, from);
      if (!res) throw new Error('no job started within 10 s of the second approval');
      for (const [id, fields] of res[0][1]) {
        from = id;
        const m = new Map();
        for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
        if (m.get('type') === 'started' && m.get('job') === 'drill')
          started = performance.now() - t0;
      }
    }
    await sent;
    toStart.push(started);
    await until(
      'the drill result',
      () => /Drill of web is healthy/.test(card.text) || /failed/.test(card.text),
      120_000,
    );
    if (!/healthy/.test(card.text)) throw new Error(`drill failed: ${card.text}`);
  }
  redis.disconnect();

  const summary = {
    date: new Date().toISOString().slice(0, 10),
    concurrent: CONCURRENT,
    rounds: ROUNDS,
    ackMs: { p50: pct(acks, 50), p99: pct(acks, 99), max: Math.max(...acks), n: acks.length },
    secondPressAckMs: { p50: pct(pressAcks, 50), max: Math.max(...pressAcks) },
    secondApprovalToStartMs: {
      p50: pct(toStart, 50),
      max: Math.max(...toStart),
      n: toStart.length,
    },
  };
  if (args.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(
      `chat benchmark: dr serve (engine + Slack HTTP receiver), ${CONCURRENT} concurrent signed slash commands x ${ROUNDS} rounds, ${DRILLS} approved drills`,
    );
    console.log(
      `slash command ack: p50 ${f(summary.ackMs.p50)} ms, p99 ${f(summary.ackMs.p99)} ms, max ${f(summary.ackMs.max)} ms (n=${acks.length}) | target p99 <= 200 ms`,
    );
    console.log(
      `second approval press -> job started: p50 ${f(summary.secondApprovalToStartMs.p50)} ms, max ${f(summary.secondApprovalToStartMs.max)} ms (n=${toStart.length}) | target <= 500 ms`,
    );
    console.log(
      `second approval press ack: p50 ${f(summary.secondPressAckMs.p50)} ms, max ${f(summary.secondPressAckMs.max)} ms`,
    );
  }
} finally {
  for (const c of children.reverse()) c.kill('SIGTERM');
  await sleep(1500);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await slack.stop();
  rmSync(work, { recursive: true, force: true });
}
