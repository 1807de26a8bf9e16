import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type LoadedConfig, readConfig } from '../../core/config.js';
import { envIsSet, readEnv } from '../../core/env.js';
import { DrError, errorMessage } from '../../core/errors.js';
import { formatHostPort, type HostPort } from '../../core/host-port.js';
import { PidLock } from '../../core/pid-lock.js';
import { REDIS_SUPERVISED_VARIABLE } from '../../core/redis-outage.js';
import {
  readUpFile,
  runDir,
  type UpState,
  upStatePath,
  writeUpState,
} from '../../core/up-state.js';
import { accessRuleFrom, requireTokenBeyondLoopback } from '../web/access-rule.js';
import { drBin, ensureWritableHome, homeInitialised } from './home-access.js';
import { choosePort, freePort, parseHostPort } from './ports.js';
import { stopDrillServers } from './recovery-servers.js';
import { findRedisServer, redisSpec } from './redis-process.js';
import { type ChildSpec, Supervisor, stopStray } from './supervisor.js';

/** What `dr up --demo` adds: its own processes and what to undo at the end. */
export interface DemoRun {
  /** Started after the worker and before the agents (the demo's service). */
  children: ChildSpec[];
  /** Added to the agents' environment (DR_TRACEFS of a private tracefs mount). */
  agentEnv?: NodeJS.ProcessEnv;
  /** Lines for the summary. */
  notes: string[];
  /** Undone after every process has stopped (unmount, detach the loop device). */
  teardown: () => Promise<void>;
}

export interface UpOptions {
  home: string;
  env: NodeJS.ProcessEnv;
  out: (line: string) => void;
  /** `--listen`, when given: where `dr serve` listens. */
  listen?: string;
  /** Print where everything is as one JSON line (up.json's content) instead of the summary. */
  json?: boolean;
  /** Open the chat console in this terminal once everything runs (`dr chat`; needs a terminal). */
  console?: boolean;
  /** Which `dr` subcommands exist (serve and chat are optional parts). */
  hasCommand: (name: string) => boolean;
  /** Prepares the demo once the home is initialised and locked (`--demo`). */
  demo?: (home: string) => Promise<DemoRun>;
  /** Initialises a missing home (with --demo); absent: a missing home is an error. */
  init?: (home: string) => Promise<void>;
}

const DEFAULT_SERVE = '127.0.0.1:8787';

/**
 * `dr up`: Redis (unless REDIS_URL is set), the gateway, a worker, `dr serve` where it exists,
 * an agent per app whose volumes are on this machine, and the demo with `--demo`, all under one
 * supervisor, until SIGINT/SIGTERM/SIGHUP or a child that keeps crashing. Resolves the exit code.
 */
export async function runUp(o: UpOptions): Promise<number> {
  const { home, env, out } = o;
  if (!o.init && !(await homeInitialised(home))) {
    throw new DrError(`no Lifeboat home at ${home}`, {
      code: 'home_missing',
      subject: home,
      remedy: 'run `dr init` first (or `dr up --demo`, which makes one with a demo app)',
    });
  }
  await ensureWritableHome(home);
  const lock = await PidLock.acquire(join(runDir(home), 'up.lock'), {
    conflict: (holder) =>
      new DrError(`\`dr up\` is already running on ${home} (pid ${holder.pid})`, {
        code: 'already_running',
        subject: home,
        remedy: `use that one (\`dr status\`, \`dr chat\` find it by themselves), stop it with Ctrl-C in its terminal or \`kill ${holder.pid}\`, or give this one another --home`,
      }),
  });
  const stop = new AbortController();
  let exitCode = 0;
  let signals = 0;
  let upState: Omit<UpState, 'children'> | undefined;
  const sup = new Supervisor({
    out,
    ...upTuning(env),
    onRestart: () => {
      if (upState) {
        writeUpState(home, { ...upState, children: sup.children() }).catch((err: unknown) =>
          out(`up: cannot update ${upStatePath(home)}: ${errorMessage(err)}`),
        );
      }
    },
    onGiveUp: () => {
      exitCode = 1;
      sup.cancelStarts();
      stop.abort();
    },
  });
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      out(
        `up: ${sig}: stopping everything (${sig === 'SIGINT' ? 'Ctrl-C' : 'signal'} again to kill at once)`,
      );
      sup.cancelStarts();
      stop.abort();
    } else {
      out('up: stopping now');
      void sup.stopAll(true);
    }
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of sigs) process.on(s, onSignal);
  let demo: DemoRun | undefined;
  try {
    await stopLeftovers(home, lock, out);
    if (o.init) await o.init(home);
    await readConfig(home, env); // a bad dr.yaml fails before the demo touches anything
    if (o.demo) demo = await o.demo(home);
    const config = await readConfig(home, env);
    const ready = await startAll(o, sup, config, demo, stop.signal);
    if (stop.signal.aborted) return exitCode;
    upState = ready.state;
    await writeUpState(home, { ...upState, children: sup.children() });
    if (o.json) {
      // One line a script can wait for: what up.json says, without the Redis password.
      out(
        JSON.stringify({
          ...upState,
          redisUrl: redactUrl(upState.redisUrl),
          children: sup.children(),
        }),
      );
    } else {
      for (const line of ready.summary) out(line);
    }
    if (o.console && o.hasCommand('chat')) {
      out(
        'The console: type `help` (`drill demo-shop`, `status`, …); Ctrl-D leaves it, Ctrl-C stops everything.',
      );
      await sup.start({
        name: 'console',
        command: process.execPath,
        args: [drBin(), '--home', home, 'chat'],
        env: { ...env, ...ready.childEnv },
        logFile: join(runDir(home), 'console.log'),
        interactive: true,
      });
      await writeUpState(home, { ...upState, children: sup.children() });
    }
    await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve()));
    return exitCode;
  } catch (err) {
    if (stop.signal.aborted) return exitCode; // stopped while starting: not an error
    throw err;
  } finally {
    await sup.stopAll(signals > 1);
    await stopDrillServers(home, out).catch((err: unknown) =>
      out(`up: drill servers: ${errorMessage(err)}`),
    );
    await demo?.teardown().catch((err: unknown) => out(`up: demo cleanup: ${errorMessage(err)}`));
    await removeUpState(home);
    await lock.release();
    for (const s of sigs) process.off(s, onSignal);
    out(exitCode === 0 ? 'up: stopped; nothing left running' : 'up: stopped after a failure');
  }
}

/** Restart tuning from the environment (tests use it to give up at once). */
function upTuning(env: NodeJS.ProcessEnv): { maxRestarts?: number; backoffMs?: number } {
  const max = readEnv('DR_UP_MAX_RESTARTS', env);
  const backoff = readEnv('DR_UP_BACKOFF', env);
  return {
    ...(max !== undefined ? { maxRestarts: max } : {}),
    ...(backoff !== undefined ? { backoffMs: backoff } : {}),
  };
}

interface Started {
  state: Omit<UpState, 'children'>;
  /** REDIS_URL, DR_GATEWAY and DR_HOME as the children got them. */
  childEnv: NodeJS.ProcessEnv;
  summary: string[];
}

async function startAll(
  o: UpOptions,
  sup: Supervisor,
  config: LoadedConfig,
  demo: DemoRun | undefined,
  signal: AbortSignal,
): Promise<Started> {
  const { home, out } = o;
  const logs = runDir(home);
  const log = (name: string) => join(logs, `${name.replace(/\s+/g, '-')}.log`);
  const bin = drBin();
  const dr = (
    name: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    extra: Partial<ChildSpec> = {},
  ) =>
    sup.start({
      name,
      command: process.execPath,
      args: [bin, '--home', home, ...args],
      env,
      logFile: log(name),
      ...extra,
    });
  const summary: string[] = [];
  const row = (part: string, where: string) => summary.push(`  ${part.padEnd(18)} ${where}`);

  // Ports first, so a port problem fails before anything starts.
  const gatewayWanted = parseHostPort(config.gateway.listen, 'gateway.listen in dr.yaml');
  const gateway = await choosePort(gatewayWanted, 'gateway', false, 'gateway.listen in dr.yaml');
  if (gateway.note) out(`up: ${gateway.note}`);
  const serveWanted = parseHostPort(o.listen ?? DEFAULT_SERVE, '--listen');
  if (o.hasCommand('serve')) {
    // `dr serve` would refuse it: say so before anything starts.
    requireTokenBeyondLoopback(o.listen ?? DEFAULT_SERVE, serveWanted.host, accessRuleFrom(o.env));
  }
  const serveOn = o.hasCommand('serve')
    ? await choosePort(serveWanted, 'serve', o.listen !== undefined, '--listen')
    : undefined;
  if (serveOn?.note) out(`up: ${serveOn.note}`);

  let redisUrl = readEnv('REDIS_URL', o.env);
  let redisNote: string;
  if (redisUrl) {
    redisNote = `${redactUrl(redisUrl)} (REDIS_URL)`;
  } else {
    const version = findRedisServer(o.env);
    const port = await freePort();
    const redis = await redisSpec(home, port, o.env, log('redis'));
    redisUrl = redis.url;
    out(`up: starting redis-server ${version} on 127.0.0.1:${port}`);
    await sup.start(redis.spec);
    redisNote = `${redactUrl(redisUrl)} (redis-server ${version}, password in up.json, data in ${join(home, 'redis')})`;
  }
  if (signal.aborted) throw new Error('stopped');
  const gatewayAddress = reachable(gateway.address);
  const env: NodeJS.ProcessEnv = {
    ...o.env,
    DR_HOME: home,
    REDIS_URL: redisUrl,
    DR_GATEWAY: gatewayAddress,
    // Its own Redis: dr up says here when it stops and is back; the parts keep that to their logs.
    ...(o.env.REDIS_URL ? {} : { [REDIS_SUPERVISED_VARIABLE]: '1' }),
  };
  row('redis', redisNote);

  await dr('gateway', ['gateway', '--listen', formatHostPort(gateway.address)], env, {
    ready: /gateway listening on/,
  });
  row('gateway', `${gatewayAddress} (store ${config.storeDir})`);
  if (signal.aborted) throw new Error('stopped');

  await dr('worker', ['worker'], env, { ready: /worker ready/ });
  row('worker', 'recovery jobs (drill, failover, cleanup) from Redis');
  if (signal.aborted) throw new Error('stopped');

  if (serveOn) {
    const listen = formatHostPort(serveOn.address);
    await dr('serve', ['serve', '--listen', listen], env, {
      ready: /listening|serving|ready/i,
      readyTimeoutMs: 60_000,
    });
    row('serve', `http://${listen}/ (status page, /metrics; engine and chat surfaces)`);
  }

  // Agents and the demo's service never use Redis: they do not get its password (their hooks
  // and children would inherit it, and their environment is readable in /proc).
  const { REDIS_URL: _redis, ...noRedisEnv } = env;
  for (const child of demo?.children ?? []) {
    await sup.start({ ...child, env: { ...noRedisEnv, ...child.env } });
    if (signal.aborted) throw new Error('stopped');
  }

  const apps = Object.keys(config.apps).sort();
  for (const app of apps) {
    const missing = await missingVolumes(config, app);
    if (missing.length > 0) {
      row(`agent ${app}`, `not started: not on this machine (${missing.join(', ')} missing)`);
      continue;
    }
    await dr(
      `agent ${app}`,
      ['agent', '--app', app],
      { ...noRedisEnv, ...demo?.agentEnv },
      {
        final: /was failed over/,
      },
    );
    row(`agent ${app}`, `replicating ${config.apps[app]?.volumes.map((v) => v.path).join(', ')}`);
  }
  if (apps.length === 0) row('agents', 'none: no apps yet (`dr app add`, or `dr up --demo`)');

  const state: Omit<UpState, 'children'> = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    home,
    redisUrl,
    gateway: gatewayAddress,
    ...(envIsSet('DR_REDIS_PREFIX', o.env) ? { prefix: readEnv('DR_REDIS_PREFIX', o.env) } : {}),
    ...(serveOn ? { listen: formatHostPort(serveOn.address) } : {}),
  };
  const tryLines = [
    `Lifeboat is up on ${home}`,
    ...summary,
    ...(demo?.notes ?? []),
    `  logs               ${logs}/*.log`,
    'In another terminal, with the same DR_HOME (no other flags needed):',
    `  dr status${apps[0] ? `; dr drill ${apps[0]} --wait` : ''}${o.hasCommand('chat') ? '; dr chat' : ''}`,
    'Ctrl-C stops everything.',
  ];
  return {
    state,
    summary: tryLines,
    childEnv: {
      DR_HOME: home,
      REDIS_URL: redisUrl,
      DR_GATEWAY: gatewayAddress,
      ...(o.env.REDIS_URL ? {} : { [REDIS_SUPERVISED_VARIABLE]: '1' }),
    },
  };
}

/** Where the other processes reach a listener: a wildcard address means this machine's loopback. */
function reachable({ host, port }: HostPort): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return formatHostPort({ host: h, port });
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

async function missingVolumes(config: LoadedConfig, app: string): Promise<string[]> {
  const out: string[] = [];
  for (const v of config.apps[app]?.volumes ?? []) {
    const there = await stat(v.path).then(
      () => true,
      () => false, // missing or unreadable: the agent is not started here
    );
    if (!there) out.push(v.path);
  }
  return out;
}

/** A `dr up` that died without stopping its children (kill -9, power loss): stop what still runs. */
async function stopLeftovers(home: string, lock: PidLock, out: (line: string) => void) {
  if (!lock.previous) return;
  const old = readUpFile(home);
  if (!old || old.pid !== lock.previous.pid) return;
  for (const c of [...old.children].reverse()) {
    if (!(await isOurs(c.pid, c.name))) continue;
    out(`up: a previous dr up (pid ${old.pid}) left ${c.name} running (pid ${c.pid}); stopping it`);
    await stopStray(c.pid);
  }
}

/** Whether pid still runs the child named (not a new process that reused the number). */
async function isOurs(pid: number, name: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (cmdline === '') return false;
  return name === 'redis' ? cmdline.includes('redis-server') : cmdline.includes('dr.js');
}

async function removeUpState(home: string): Promise<void> {
  const state = readUpFile(home);
  if (state && state.pid !== process.pid) return; // not ours
  await rm(upStatePath(home), { force: true });
}
