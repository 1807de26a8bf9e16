import { spawn } from 'node:child_process';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { answeredByAnother } from './answered-by-another.js';
import { type FreezeTarget, freezeServer, stopFrozenServer, thawServer } from './local-freeze.js';
import { groupAlive, signalGroup } from './process-group.js';
import type {
  FrozenServer,
  HealthResult,
  Launched,
  LaunchRequest,
  MaterialisedVolume,
  Provider,
} from './provider.js';
import { type HealthCheck, runHealthCheck } from './run-health-check.js';

export interface LocalProviderOptions {
  /** DR_HOME/recovery: each operation owns `<dir>/<opId>` (images, server.json, server.log). */
  dir: string;
  /** The app's start command (`/bin/sh -c`); without one, launch only records the images. */
  start?: string;
  /** Health check: an http(s) URL to GET, or a command that must exit 0. */
  check?: string;
  /** Failback's freeze and thaw hooks (see local-freeze.ts). */
  freeze?: string;
  thaw?: string;
  log?: Logger;
}

/** What `<dir>/<opId>/server.json` records, so health and destroy work after a worker restart. */
export interface LocalServerRecord {
  opId: string;
  app: string;
  mode: 'drill' | 'failover';
  startedAt: string;
  check: string | null;
  /** Absent when there is no start command. */
  pid?: number;
  pgid?: number;
  volumes: MaterialisedVolume[];
}

const KILL_GRACE_MS = 5000;
const RETRY_MS = 250;
const LOG_TAIL_LINES = 20;
const LOG_TAIL_BYTES = 16 * 1024;

/** `DR_VOLUME_<NAME>`: upper case, anything a shell name cannot hold becomes `_`. */
export function volumeEnvName(volume: string): string {
  return `DR_VOLUME_${volume.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

/**
 * Recovers onto this machine: the images stay under `<dir>/<opId>` and the "server" is the app's
 * start command run against them, detached in its own process group so destroy can end all of it.
 */
export function createLocalProvider({
  dir,
  start,
  check,
  freeze,
  thaw,
  log = silentLog,
}: LocalProviderOptions): Provider {
  const healthCheck: HealthCheck | undefined =
    check === undefined
      ? undefined
      : /^https?:\/\//i.test(check)
        ? { url: check }
        : { command: check };
  /** How servers started by this process ended; a restarted worker knows only whether the group lives. */
  const exits = new Map<string, string>();

  async function launch(req: LaunchRequest): Promise<Launched> {
    const opDir = join(dir, safeOpId(req.opId));
    const plog = req.log.child({ opId: req.opId, provider: 'local' });
    req.signal.throwIfAborted();
    await mkdir(opDir, { recursive: true, mode: 0o700 });
    // A retried launch replaces the server of the earlier attempt; the images stay.
    await stopGroup(await readRecord(opDir), plog);
    exits.delete(req.opId);
    const record: LocalServerRecord = {
      opId: req.opId,
      app: req.app,
      mode: req.mode,
      startedAt: new Date().toISOString(),
      check: check ?? null,
      volumes: req.volumes,
    };
    const logPath = join(opDir, 'server.log');
    const details: Record<string, string> = { dir: opDir };
    for (const v of req.volumes) details[`volume.${v.name}`] = v.path;
    if (start !== undefined) {
      req.onStep?.('instance', 0);
      const pid = await spawnServer(start, opDir, logPath, serverEnv(record));
      record.pid = pid;
      record.pgid = pid;
      Object.assign(details, { pid: String(pid), log: logPath });
      plog.info({ pid, log: logPath }, 'local server started');
    }
    await writeFile(join(opDir, 'server.json'), `${JSON.stringify(record, null, 2)}\n`, {
      mode: 0o600,
    });
    req.onStep?.('instance', 1);
    return {
      provider: 'local',
      id: `local:${req.opId}`,
      ...(healthCheck?.url !== undefined ? { endpoint: healthCheck.url } : {}),
      details,
    };
  }

  /** Starts `sh -c start` detached (its own process group), output appended to the log. */
  async function spawnServer(
    command: string,
    cwd: string,
    logPath: string,
    env: Record<string, string>,
  ): Promise<number> {
    const fh = await open(logPath, 'a', 0o600);
    try {
      await fh.write(`--- ${new Date().toISOString()} starting: ${command}\n`);
      const child = spawn('/bin/sh', ['-c', command], {
        cwd,
        env: { ...operatorEnv(), ...env },
        stdio: ['ignore', fh.fd, fh.fd],
        detached: true,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err) =>
          reject(
            new DrError(`the start command could not be run: ${errorMessage(err)}`, {
              code: 'provider_failed',
              subject: cwd,
              remedy: 'check that /bin/sh exists and the recovery directory is writable',
              cause: err,
            }),
          ),
        );
      });
      const pid = child.pid;
      if (pid === undefined) throw new Error('spawn reported no pid');
      child.on('error', (err) => log.warn({ err, pid }, 'local server process error'));
      const opId = env.DR_OP_ID ?? '';
      child.on('exit', (code, sig) => {
        exits.set(opId, sig ? `was killed by ${sig}` : `exited with code ${code}`);
      });
      child.unref(); // the server outlives a worker restart; server.json finds it again
      return pid;
    } finally {
      await fh.close();
    }
  }

  async function health(
    server: Launched,
    { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
  ): Promise<HealthResult> {
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    const fail = (output: string): HealthResult => ({ ok: false, output, ms: ms() });
    const opId = server.id.replace(/^local:/, '');
    const opDir = join(dir, safeOpId(opId));
    const record = await readRecord(opDir);
    if (!record) return fail(`no local server for ${opId}: ${opDir}/server.json is missing`);
    const missing = await missingImages(record.volumes);
    if (missing.length > 0) return fail(`image missing: ${missing.join(', ')}`);
    const env = serverEnv(record);
    const { pgid } = record;
    if (pgid === undefined) {
      // Nothing runs: the images are the server; a check (if any) runs once against them.
      if (!healthCheck)
        return { ok: true, output: `${record.volumes.length} image(s) present`, ms: ms() };
      return {
        ...(await runHealthCheck(healthCheck, '127.0.0.1', { timeoutMs, signal, env })),
        ms: ms(),
      };
    }
    const deadline = Date.now() + timeoutMs;
    let foreign: string | undefined; // another's server answered: told whatever comes after
    const exited = async () =>
      groupAlive(pgid)
        ? undefined
        : fail(
            `${foreign ? `${foreign}; ` : ''}${await exitReport(opId, pgid, join(opDir, 'server.log'))}`,
          );
    let last: HealthResult | undefined;
    // The server may still be starting: try until the deadline, stop early if it dies.
    for (;;) {
      const dead = await exited();
      if (dead) return dead;
      if (!healthCheck)
        return {
          ok: true,
          output: `server running (pid ${pgid}); no health check configured`,
          ms: ms(),
        };
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted) break;
      last = await runHealthCheck(healthCheck, '127.0.0.1', { timeoutMs: left, signal, env });
      // Another operation's server on the same port (a kept drill) answered: not this one's health.
      const other = last.ok ? await answeredByAnother(healthCheck, opId) : undefined;
      foreign = other ?? foreign;
      if (last.ok && !other) return { ...last, ms: ms() };
      if (Date.now() + RETRY_MS >= deadline || signal.aborted) break;
      await sleep(RETRY_MS, undefined, { signal }).catch(() => undefined); // aborted: the loop ends next
    }
    const dead = await exited();
    if (dead) return dead;
    const why = signal.aborted ? 'cancelled' : `not healthy within ${timeoutMs} ms`;
    return fail(`${why}${foreign ? `; ${foreign}` : last ? `; last check: ${last.output}` : ''}`);
  }

  async function exitReport(opId: string, pgid: number, logPath: string): Promise<string> {
    const how = exits.get(opId) ?? 'is no longer running';
    const tail = await logTail(logPath);
    return `the server (pid ${pgid}) ${how}; last lines of ${logPath}:\n${tail}`;
  }

  async function destroy(opId: string, dlog: Logger): Promise<string[]> {
    const opDir = join(dir, safeOpId(opId));
    const plog = dlog.child({ opId, provider: 'local' });
    const removed: string[] = [];
    const record = await readRecord(opDir);
    const frozen = record ? await stopFrozenServer(freezeTarget(opDir, record), plog) : false;
    if (frozen || (await stopGroup(record, plog))) removed.push(`process group ${record?.pgid}`);
    exits.delete(opId);
    if (await exists(opDir)) {
      await rm(opDir, { recursive: true, force: true });
      removed.push(opDir);
    }
    if (removed.length > 0) plog.info({ removed }, 'local recovery removed');
    return removed;
  }

  async function stop(opId: string, slog: Logger): Promise<boolean> {
    const opDir = join(dir, safeOpId(opId));
    const record = await readRecord(opDir);
    const plog = slog.child({ opId, provider: 'local' });
    // A frozen server is killed before its file systems thaw: it acknowledges nothing more.
    if (record && (await stopFrozenServer(freezeTarget(opDir, record), plog))) return true;
    const stopped = await stopGroup(record, plog);
    if (stopped) slog.info({ opId }, 'local server stopped; its images are kept');
    return stopped;
  }

  function freezeTarget(opDir: string, record: LocalServerRecord): FreezeTarget {
    return {
      opDir,
      images: record.volumes.map((v) => v.path),
      ...(record.pgid !== undefined && groupAlive(record.pgid) ? { pgid: record.pgid } : {}),
      ...(freeze !== undefined ? { freeze } : {}),
      ...(thaw !== undefined ? { thaw } : {}),
      env: serverEnv(record),
    };
  }

  async function freezeOp(opId: string, flog: Logger): Promise<FrozenServer | undefined> {
    const opDir = join(dir, safeOpId(opId));
    const record = await readRecord(opDir);
    // Nothing runs: there is nothing to freeze, and nothing to stop either.
    if (record?.pgid === undefined || !groupAlive(record.pgid)) return undefined;
    return freezeServer(freezeTarget(opDir, record), flog.child({ opId, provider: 'local' }));
  }

  async function thawOp(opId: string, tlog: Logger): Promise<boolean> {
    const opDir = join(dir, safeOpId(opId));
    const record = await readRecord(opDir);
    if (!record) return false;
    return thawServer(freezeTarget(opDir, record), tlog.child({ opId, provider: 'local' }));
  }

  async function leftovers(): Promise<string[]> {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
      if (systemCode(err) === 'ENOENT') return [];
      throw err;
    });
    const out: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const files = await readdir(join(dir, e.name)).catch(() => [] as string[]); // removed meanwhile
      if (files.some((f) => f === 'server.json' || f.endsWith('.img'))) out.push(e.name);
    }
    return out.sort();
  }

  log.debug({ dir, start: start !== undefined, check: check !== undefined }, 'local provider');
  return {
    kind: 'local',
    launch,
    health,
    stop,
    freeze: freezeOp,
    thaw: thawOp,
    destroy,
    leftovers,
  };
}

/** SIGTERM to the group, SIGKILL after the grace period; resolves whether there was a group to stop. */
async function stopGroup(record: LocalServerRecord | undefined, log: Logger): Promise<boolean> {
  const pgid = record?.pgid;
  if (pgid === undefined || !groupAlive(pgid)) return false;
  signalGroup(pgid, 'SIGTERM');
  const until = Date.now() + KILL_GRACE_MS;
  while (groupAlive(pgid) && Date.now() < until) await sleep(50);
  if (groupAlive(pgid)) {
    log.warn({ pgid }, 'server ignored SIGTERM; killing it');
    signalGroup(pgid, 'SIGKILL');
    const killUntil = Date.now() + KILL_GRACE_MS;
    while (groupAlive(pgid) && Date.now() < killUntil) await sleep(20);
    if (groupAlive(pgid)) {
      throw new DrError(`process group ${pgid} survived SIGKILL`, {
        code: 'provider_failed',
        subject: `pgid ${pgid}`,
        remedy:
          'look for a process stuck in the kernel (state D) with `ps -g`, then run cleanup again',
      });
    }
  }
  return true;
}

function serverEnv(r: LocalServerRecord): Record<string, string> {
  const env: Record<string, string> = { DR_OP_ID: r.opId, DR_APP: r.app, DR_MODE: r.mode };
  for (const v of r.volumes) env[volumeEnvName(v.name)] = v.path;
  return env;
}

/** The worker's environment without cloud credentials: the start command is the operator's. */
function operatorEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^ALIBABA_CLOUD_|SECRET/i.test(k)) out[k] = v;
  }
  return out;
}

/** An operation id names a directory that destroy removes: nothing that could reach outside `dir`. */
function safeOpId(opId: string): string {
  if (!/^[\w][\w.:-]*$/.test(opId)) {
    throw new DrError(`operation id ${JSON.stringify(opId)} cannot name a recovery directory`, {
      code: 'provider_failed',
      subject: opId,
      remedy: 'use letters, digits, `_`, `-`, `.` and `:` in operation ids',
    });
  }
  return opId;
}

async function readRecord(opDir: string): Promise<LocalServerRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(opDir, 'server.json'), 'utf8')) as LocalServerRecord;
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw new DrError(`${opDir}/server.json is unreadable: ${errorMessage(err)}`, {
      code: 'provider_failed',
      subject: join(opDir, 'server.json'),
      remedy: 'stop the server by hand if it runs, then delete the directory',
      cause: err,
    });
  }
}

async function missingImages(volumes: MaterialisedVolume[]): Promise<string[]> {
  const out: string[] = [];
  for (const v of volumes) if (!(await exists(v.path))) out.push(v.path);
  return out;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: unknown) => {
      if (systemCode(err) === 'ENOENT') return false;
      throw err;
    },
  );
}

async function logTail(path: string): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, LOG_TAIL_BYTES);
      const { buffer } = await fh.read(Buffer.alloc(len), 0, len, size - len);
      return buffer.toString('utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return `(log unreadable: ${errorMessage(err)})`;
  }
}
