// `dr app add`'s options, checked: each a one-line usage error naming the option and the remedy.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { APP_NAME, type AppConfig, VOLUME_NAME, type VolumeConfig } from '../../core/config.js';
import { DrError, systemCode } from '../../core/errors.js';
import { parseDuration, parseSize } from '../../core/units.js';
import { usageError } from '../context.js';

const TIERS = ['prod', 'staging', 'dev'] as const;
type Tier = (typeof TIERS)[number];
export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface AddOptions {
  volume?: string[];
  tier: string;
  blockSize: string;
  fsfreeze?: string[];
  quiesceFreeze?: string;
  quiesceThaw?: string;
  quiesceTimeout?: string;
  provider?: string;
  start?: string;
  check?: string;
  checkTimeout?: string;
  fence?: string;
  unfence?: string;
  fenceTimeout?: string;
  force?: boolean;
  json?: boolean;
}

export async function validateApp(name: string, opts: AddOptions): Promise<AppConfig> {
  if (!APP_NAME.test(name)) {
    throw usageError(
      `app name ${JSON.stringify(name)} is not valid`,
      'use lower-case letters, digits and -, starting with a letter or digit (at most 63), like web or shop-db',
    );
  }
  if (!(TIERS as readonly string[]).includes(opts.tier)) {
    throw usageError(
      `--tier ${JSON.stringify(opts.tier)} is not a tier`,
      `use one of: ${TIERS.join(', ')}`,
    );
  }
  const blockSize = parseSize(opts.blockSize);
  if (
    blockSize === undefined ||
    blockSize < 4 * KiB ||
    blockSize > 4 * MiB ||
    (blockSize & (blockSize - 1)) !== 0
  ) {
    throw usageError(
      `--block-size ${JSON.stringify(opts.blockSize)} is not a power of two between 4KiB and 4MiB`,
      'pass a size like 4KiB, 64KiB or 1MiB',
    );
  }
  const specs = opts.volume ?? [];
  if (specs.length === 0) {
    throw usageError(
      `app ${name} needs at least one --volume`,
      'pass --volume NAME=PATH, like --volume data=/dev/vdb',
    );
  }
  const volumes: VolumeConfig[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const volumeName = eq < 0 ? '' : spec.slice(0, eq);
    const path = eq < 0 ? '' : spec.slice(eq + 1);
    if (eq < 0 || path === '') {
      throw usageError(
        `--volume ${JSON.stringify(spec)} is not NAME=PATH`,
        'pass it like --volume data=/dev/vdb',
      );
    }
    if (!VOLUME_NAME.test(volumeName)) {
      throw usageError(
        `volume name ${JSON.stringify(volumeName)} in --volume ${JSON.stringify(spec)} is not valid`,
        'use lower-case letters, digits, - and _, starting with a letter or digit (at most 63)',
      );
    }
    if (volumes.some((v) => v.name === volumeName)) {
      throw usageError(
        `volume name ${JSON.stringify(volumeName)} is given twice`,
        'give each --volume of an app its own name',
      );
    }
    volumes.push({ name: volumeName, path: await checkVolumePath(volumeName, path) });
  }
  return {
    tier: opts.tier as Tier,
    blockSize,
    volumes,
    owners: [],
    rpoObjective: 60_000,
    ...validateFence(opts),
    ...(await validateQuiesce(opts)),
    ...validateProvider(opts),
  };
}

/** The fence command and its timeout; the default timeout (60 s) is left out of dr.yaml. */
function validateFence(opts: AddOptions): Pick<AppConfig, 'fence' | 'unfence' | 'fenceTimeout'> {
  if (opts.fence !== undefined && opts.fence.trim() === '') {
    throw usageError(
      '--fence is empty',
      'give --fence a command that stops the source (like `systemctl stop web; umount /srv`), or leave it out',
    );
  }
  if (opts.unfence !== undefined && opts.unfence.trim() === '') {
    throw usageError(
      '--unfence is empty',
      'give --unfence a command that brings the source back (like `mount /srv; systemctl start web`), or leave it out',
    );
  }
  const fenceTimeout = parseDuration(opts.fenceTimeout ?? '60s');
  if (fenceTimeout === undefined || fenceTimeout < 100 || fenceTimeout > 3_600_000) {
    throw usageError(
      `--fence-timeout ${JSON.stringify(opts.fenceTimeout)} is not a duration from 100ms to 1h`,
      'pass it like 60s or 5m',
    );
  }
  return {
    ...(opts.fence !== undefined ? { fence: opts.fence.trim() } : {}),
    ...(opts.unfence !== undefined ? { unfence: opts.unfence.trim() } : {}),
    fenceTimeout,
  };
}

/** The recovery options; the default (local, no start, no check, 60 s) is left out of dr.yaml. */
function validateProvider(opts: AddOptions): Pick<AppConfig, 'provider'> {
  const kind = opts.provider ?? 'local';
  if (kind !== 'local' && kind !== 'alicloud') {
    throw usageError(
      `--provider ${JSON.stringify(kind)} is not a provider`,
      'use local or alicloud',
    );
  }
  if (kind === 'alicloud') {
    throw usageError(
      '--provider alicloud needs its ECS settings, which have no flags',
      'add the app without --provider, then write its provider block in dr.yaml by hand (see docs/recovery.md, "Providers")',
    );
  }
  for (const [flag, value] of [
    ['--start', opts.start],
    ['--check', opts.check],
  ] as const) {
    if (value !== undefined && value.trim() === '') {
      throw usageError(`${flag} is empty`, `give ${flag} a command, or leave it out`);
    }
  }
  const checkTimeout = parseDuration(opts.checkTimeout ?? '60s');
  if (checkTimeout === undefined || checkTimeout < 100 || checkTimeout > 3_600_000) {
    throw usageError(
      `--check-timeout ${JSON.stringify(opts.checkTimeout)} is not a duration from 100ms to 1h`,
      'pass it like 60s or 5m',
    );
  }
  const given = opts.start !== undefined || opts.check !== undefined || checkTimeout !== 60_000;
  if (!given) return {};
  return {
    provider: {
      kind,
      ...(opts.start !== undefined ? { start: opts.start } : {}),
      ...(opts.check !== undefined ? { check: opts.check } : {}),
      checkTimeout,
    },
  };
}

/** The quiesce options: mount points that exist, hooks given in pairs, a sane timeout. */
async function validateQuiesce(opts: AddOptions): Promise<Pick<AppConfig, 'quiesce'>> {
  const fsfreeze = (opts.fsfreeze ?? []).map((m) => resolve(m));
  if ((opts.quiesceFreeze === undefined) !== (opts.quiesceThaw === undefined)) {
    throw usageError(
      `--quiesce-freeze and --quiesce-thaw go together (got only ${opts.quiesceFreeze ? '--quiesce-freeze' : '--quiesce-thaw'})`,
      'give both hooks, so whatever the freeze does is always undone',
    );
  }
  for (const m of fsfreeze) {
    const info = await stat(m).catch(() => undefined);
    const parent = await stat(dirname(m)).catch(() => undefined);
    // A mount point sits on another device than its parent (or is /): freezing
    // a plain directory would freeze whatever file system holds it.
    if (!info?.isDirectory() || (m !== '/' && parent?.dev === info.dev)) {
      throw usageError(
        `--fsfreeze ${m} is not a mount point`,
        'pass the directory where the file system on the volume is mounted',
      );
    }
  }
  const timeout = parseDuration(opts.quiesceTimeout ?? '2s');
  if (timeout === undefined || timeout < 100 || timeout > 60_000) {
    throw usageError(
      `--quiesce-timeout ${JSON.stringify(opts.quiesceTimeout)} is not a duration from 100ms to 60s`,
      'pass it like 2s or 500ms',
    );
  }
  if (fsfreeze.length === 0 && opts.quiesceFreeze === undefined) return {};
  return {
    quiesce: {
      fsfreeze,
      ...(opts.quiesceFreeze ? { freeze: opts.quiesceFreeze } : {}),
      ...(opts.quiesceThaw ? { thaw: opts.quiesceThaw } : {}),
      timeout,
    },
  };
}

/** A volume is a block device or a regular file (an image) this user can read; returns its absolute path. */
async function checkVolumePath(volume: string, path: string): Promise<string> {
  const full = resolve(path);
  const unreadable = (why: string, remedy: string, cause?: unknown) =>
    new DrError(`volume ${volume}: ${full} ${why}`, {
      code: 'volume_unreadable',
      subject: full,
      remedy,
      cause,
    });
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(full);
  } catch (err) {
    if (systemCode(err) === 'ENOENT') {
      throw unreadable('does not exist', 'check the path (`lsblk` lists block devices)', err);
    }
    throw unreadable(
      `cannot be examined (${systemCode(err) ?? 'error'})`,
      'check the path and its permissions',
      err,
    );
  }
  if (!info.isBlockDevice() && !info.isFile()) {
    throw unreadable(
      info.isDirectory() ? 'is a directory' : 'is neither a block device nor a regular file',
      'name a block device like /dev/vdb or a disk image file',
    );
  }
  try {
    await access(full, constants.R_OK);
  } catch (err) {
    throw unreadable(
      'cannot be read by this user',
      'run Lifeboat as a user that can read it (root, or a member of the disk group), or fix its permissions',
      err,
    );
  }
  return full;
}
