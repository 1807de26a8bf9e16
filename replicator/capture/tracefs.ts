import { readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, type ErrorCode, errorMessage, systemCode } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { pidAlive } from '../../core/pid-alive.js';

// The tracefs side of the trace tracker: where tracefs is, whether a device can be traced,
// and instances made, written and removed.

const TRACEFS_PLACES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
export const EVENT = 'events/block/block_bio_queue';
const INSTANCE_NAME = /^lifeboat-(\d+)-[0-9a-f]+$/;

/** Why a device cannot be traced, as an error code and a remedy. */
export interface Obstacle {
  reason: string;
  code: ErrorCode;
  remedy: string;
}

/** A traceable device: the tracefs to use and the device's numbers. */
export interface Traceable {
  tracefs: string;
  major: number;
  minor: number;
}

/** Removes tracefs instances named lifeboat-<pid>-* whose process is dead (left by a crash). Returns the names removed. */
export async function removeStaleInstances(
  tracefs?: string,
  log: Logger = silentLog,
): Promise<string[]> {
  const root = await findTracefs(tracefs);
  if (root === undefined) return [];
  const dir = join(root, 'instances');
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const pid = Number(INSTANCE_NAME.exec(name)?.[1] ?? 0);
    if (pid === 0 || pidAlive(pid)) continue;
    const path = join(dir, name);
    try {
      await retire(path);
      removed.push(name);
    } catch (err) {
      log.warn({ instance: path, err: errorMessage(err) }, 'stale trace instance not removed');
    }
  }
  return removed;
}

/**
 * A crashed agent's `cat` outlives it, blocked on trace_pipe, and keeps the instance busy.
 * A marker wakes it: it writes to its dead parent's pipe, gets SIGPIPE and exits.
 */
async function retire(path: string): Promise<void> {
  // Each step only helps the rmdir below, which reports what went wrong; so failures are ignored.
  const ignore = () => undefined;
  await writeFile(join(path, EVENT, 'enable'), '0').catch(ignore);
  await writeFile(join(path, 'tracing_on'), '1').catch(ignore);
  await writeFile(join(path, 'trace_marker'), 'lifeboat-retire').catch(ignore);
  await removeInstance(path);
}

/** rmdir of an instance answers EBUSY while a reader still has it open: retry for up to 2 s. */
export async function removeInstance(path: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(path);
      return;
    } catch (err) {
      const code = systemCode(err);
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 40) {
        throw new DrError(
          `cannot remove the trace instance ${path} (${code ?? errorMessage(err)})`,
          {
            code: 'usage',
            subject: path,
            remedy: `stop any process reading ${path}/trace_pipe, then run \`rmdir ${path}\``,
            cause: err,
          },
        );
      }
      await sleep(50);
    }
  }
}

export async function writeControl(path: string, value: string, device: string): Promise<void> {
  try {
    await writeFile(path, value);
  } catch (err) {
    throw new DrError(
      `cannot write "${value}" to ${path} while tracing ${device} (${systemCode(err) ?? errorMessage(err)})`,
      {
        code: 'usage',
        subject: path,
        remedy: 'check the kernel log and tracefs error_log, or use the scan tracker',
        cause: err,
      },
    );
  }
}

/** Checks, cheapest and most specific first: the device, root, tracefs, the tracepoint. */
export async function inspect(
  device: string,
  tracefs: string | undefined,
): Promise<Obstacle | Traceable> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(device);
  } catch (err) {
    const code = systemCode(err);
    return {
      code: 'volume_unreadable',
      reason:
        code === 'ENOENT' ? `${device} does not exist` : `${device} cannot be examined (${code})`,
      remedy: 'point the volume at an existing block device',
    };
  }
  if (!st.isBlockDevice()) {
    return {
      code: 'volume_unreadable',
      reason: `${device} is not a block device, and block tracing sees only block devices`,
      remedy: `attach it as a loop device with \`losetup --find --show ${device}\` and protect that, or use the scan tracker`,
    };
  }
  const uid = process.getuid?.();
  if (uid !== 0) {
    return {
      code: 'usage',
      reason: `tracing block writes needs root, and this process runs as uid ${uid}`,
      remedy: 'run the agent as root, or use the scan tracker',
    };
  }
  const root = await findTracefs(tracefs);
  if (root === undefined) {
    return {
      code: 'usage',
      reason: `tracefs is not mounted at ${tracefs ?? TRACEFS_PLACES.join(' or ')}`,
      remedy: `mount it with \`mount -t tracefs nodev ${tracefs ?? '/sys/kernel/tracing'}\``,
    };
  }
  if (!(await exists(join(root, EVENT, 'filter')))) {
    return {
      code: 'usage',
      reason: `this kernel has no block_bio_queue tracepoint (${join(root, EVENT)} is missing)`,
      remedy: 'use a kernel with event tracing (CONFIG_EVENT_TRACING), or the scan tracker',
    };
  }
  // Node's rdev is glibc's dev_t: minor bits 0-7 and 20-31, major bits 8-19.
  const rdev = Number(st.rdev);
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return { tracefs: root, major, minor };
}

/** The first candidate that is a mounted tracefs (an unmounted mount point is an empty directory). */
export async function findTracefs(tracefs: string | undefined): Promise<string | undefined> {
  for (const place of tracefs === undefined ? TRACEFS_PLACES : [tracefs]) {
    if (await exists(join(place, 'instances'))) return place;
  }
  return undefined;
}

function exists(path: string): Promise<boolean> {
  // Any failure to stat means "not usable here"; callers word the reason themselves.
  return stat(path).then(
    () => true,
    () => false,
  );
}
