/** A failback's freeze of a local recovered server: its freeze hook and fsfreeze of what it mounted from its images. */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { describeFailure, fsfreeze, runCommand, succeeded, thawAll } from '../capture/thaw-all.js';
import { findHolders } from '../recovery/original-holders.js';
import { groupAlive, signalGroup } from './process-group.js';
import type { FrozenServer } from './provider.js';

/** Each freeze, thaw, unmount or hook step may take this long (a busy disk flushes slowly). */
const STEP_MS = 30_000;
const GONE_MS = 15_000;
const FROZEN_FILE = 'frozen.json';

export interface FreezeTarget {
  /** `<dir>/<opId>`: where the freeze is recorded, so a restarted worker thaws or stops it. */
  opDir: string;
  /** The recovered images the server runs on. */
  images: string[];
  /** The server's process group, when it runs. */
  pgid?: number;
  /** The provider's freeze / thaw hooks, run with the server's environment. */
  freeze?: string;
  thaw?: string;
  env: Record<string, string>;
}

/** Mount points of file systems on loop devices backed by the images, in image order. */
export async function imageMounts(images: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const image of images) {
    for (const h of await findHolders(image)) {
      if (h.mount !== undefined && !out.includes(h.mount)) out.push(h.mount);
    }
  }
  return out;
}

/**
 * Quiesces the running server without stopping it: its freeze hook (if any), then `fsfreeze -f`
 * of every file system it mounted from its images, so the images hold one instant and nothing
 * more reaches them. Resolves undefined when there is nothing to freeze (no hook, nothing
 * mounted: the caller stops the server instead). Idempotent: a second call finds it frozen.
 */
export async function freezeServer(
  t: FreezeTarget,
  log: Logger,
): Promise<FrozenServer | undefined> {
  const mounts = await imageMounts(t.images);
  const earlier = await readFrozen(t.opDir);
  for (const m of earlier?.mounts ?? []) if (!mounts.includes(m)) mounts.push(m); // frozen already
  if (t.freeze === undefined && mounts.length === 0) return undefined;
  const frozen: FrozenServer = { at: Date.now(), hook: t.freeze !== undefined, mounts };
  // Recorded first: a worker killed mid-freeze leaves a record the next one thaws or stops by.
  await writeFile(join(t.opDir, FROZEN_FILE), `${JSON.stringify(frozen)}\n`, { mode: 0o600 });
  if (t.freeze !== undefined && !earlier) {
    const r = await runCommand('/bin/sh', ['-c', t.freeze], STEP_MS, { ...process.env, ...t.env });
    if (!succeeded(r)) {
      await rm(join(t.opDir, FROZEN_FILE), { force: true });
      throw new DrError(`the recovered server's freeze hook ${describeFailure(r, STEP_MS)}`, {
        code: 'quiesce_failed',
        subject: t.freeze,
        remedy:
          'fix the provider freeze hook (it must exit 0 once the app takes no writes), then run failback again',
      });
    }
  }
  for (const [i, mount] of mounts.entries()) {
    const r = await fsfreeze('-f', mount, STEP_MS);
    // EBUSY: frozen already (a retried freeze); the record says so and the thaw undoes it.
    if (succeeded(r) || /busy/i.test(r.stderr)) continue;
    await thawAll({ mounts: mounts.slice(0, i), timeoutMs: STEP_MS });
    if (frozen.hook) await thawHook(t);
    await rm(join(t.opDir, FROZEN_FILE), { force: true });
    throw new DrError(`fsfreeze -f ${mount} ${describeFailure(r, STEP_MS)}`, {
      code: 'quiesce_failed',
      subject: mount,
      remedy:
        'the recovered server was thawed and runs on; check that the worker runs as root and the mount is a file system fsfreeze supports (ext4, xfs), then run failback again',
    });
  }
  log.info({ mounts, hook: frozen.hook }, 'recovered server frozen for the final copy');
  return frozen;
}

/** Undoes freezeServer (a failback that failed after its freeze): the server runs on. */
export async function thawServer(t: FreezeTarget, log: Logger): Promise<boolean> {
  const frozen = await readFrozen(t.opDir);
  if (!frozen) return false;
  const r = await thawAll({ mounts: frozen.mounts, timeoutMs: STEP_MS });
  const hook = frozen.hook ? await thawHook(t) : undefined;
  if (hook) r.errors.push(hook);
  if (r.errors.length > 0) {
    throw new DrError(`the recovered server could not be thawed: ${r.errors.join('; ')}`, {
      code: 'quiesce_failed',
      subject: frozen.mounts.join(' ') || t.opDir,
      remedy: `thaw it by hand (fsfreeze -u ${frozen.mounts.join(' ')}${frozen.hook ? ' and its thaw hook' : ''})`,
    });
  }
  await rm(join(t.opDir, FROZEN_FILE), { force: true });
  log.info({ mounts: frozen.mounts }, 'recovered server thawed; it runs on');
  return true;
}

/**
 * Stops a frozen server so that nothing it does after the freeze counts: kill -9 of its process
 * group while its file systems are still frozen (a write blocked there never returns to the app,
 * so the app acknowledges nothing more), then thaw, wait for the group to be gone, unmount what
 * it mounted from its images and detach their loop devices (its own stop handler never ran).
 * Resolves false when the server was not frozen (the caller stops it the usual way).
 */
export async function stopFrozenServer(t: FreezeTarget, log: Logger): Promise<boolean> {
  const frozen = await readFrozen(t.opDir);
  if (!frozen) return false;
  if (t.pgid !== undefined) signalGroup(t.pgid, 'SIGKILL');
  const thawed = await thawAll({ mounts: frozen.mounts, timeoutMs: STEP_MS });
  if (thawed.errors.length > 0) log.warn({ errors: thawed.errors }, 'thaw after the final copy');
  if (t.pgid !== undefined) {
    const until = Date.now() + GONE_MS;
    while (groupAlive(t.pgid) && Date.now() < until) await sleep(50);
    if (groupAlive(t.pgid)) {
      throw new DrError(`the recovered server's process group ${t.pgid} survived kill -9`, {
        code: 'provider_failed',
        subject: `pgid ${t.pgid}`,
        remedy:
          'look for a process stuck in the kernel (state D) with `ps -g`, then run failback again',
      });
    }
  }
  for (const mount of [...frozen.mounts].reverse()) await unmount(mount);
  for (const image of t.images) {
    for (const h of await findHolders(image)) {
      if (h.device === undefined || !h.what.startsWith('attached to loop device')) continue;
      const r = await runCommand('losetup', ['-d', h.device], STEP_MS);
      if (!succeeded(r)) log.warn({ device: h.device, why: r.stderr }, 'loop device not detached');
    }
  }
  await rm(join(t.opDir, FROZEN_FILE), { force: true });
  log.info({ mounts: frozen.mounts }, 'frozen recovered server stopped; its images are kept');
  return true;
}

/** Runs the thaw hook with the server's environment; resolves what went wrong, if anything. */
async function thawHook(t: FreezeTarget): Promise<string | undefined> {
  if (t.thaw === undefined) return undefined;
  const r = await runCommand('/bin/sh', ['-c', t.thaw], STEP_MS, { ...process.env, ...t.env });
  return succeeded(r) ? undefined : `thaw hook ${describeFailure(r, STEP_MS)}`;
}

/** umount, asked again while the last processes of the killed group let go of it. */
async function unmount(mount: string): Promise<void> {
  const until = Date.now() + STEP_MS;
  for (;;) {
    if (!(await stat(mount).catch(() => undefined))) return; // removed: nothing mounted there
    const mounted = (await imageMountsAt(mount)) > 0;
    if (!mounted) return;
    const r = await runCommand('umount', [mount], STEP_MS, { ...process.env, LC_ALL: 'C' });
    if (succeeded(r)) return;
    if (Date.now() > until) {
      throw new DrError(`cannot unmount ${mount} of the stopped recovered server: ${r.stderr}`, {
        code: 'provider_failed',
        subject: mount,
        remedy: `stop what holds it (fuser -vm ${mount}), unmount it, then run failback again`,
      });
    }
    await sleep(200);
  }
}

/** How many mounts /proc/self/mounts lists at `mount`. */
async function imageMountsAt(mount: string): Promise<number> {
  const text = await readFile('/proc/self/mounts', 'utf8').catch(() => ''); // no procfs: none
  const esc = mount.replace(
    /[ \t\n\\]/g,
    (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`,
  );
  return text.split('\n').filter((l) => l.split(' ')[1] === esc).length;
}

async function readFrozen(opDir: string): Promise<FrozenServer | undefined> {
  try {
    return JSON.parse(await readFile(join(opDir, FROZEN_FILE), 'utf8')) as FrozenServer;
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw new DrError(`${opDir}/${FROZEN_FILE} is unreadable: ${errorMessage(err)}`, {
      code: 'provider_failed',
      subject: join(opDir, FROZEN_FILE),
      remedy:
        'thaw the recovered server by hand (fsfreeze -u on its mounts), delete the file, then run failback again',
      cause: err,
    });
  }
}
