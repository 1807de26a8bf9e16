import { execFile } from 'node:child_process';
import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs a system tool, bounded in time; resolves with its standard output. */
export async function tool(cmd: string, args: string[], timeout = 60_000): Promise<string> {
  const { stdout } = await run(cmd, args, { timeout });
  return stdout;
}

async function works(cmd: string, args: string[]): Promise<boolean> {
  return tool(cmd, args).then(
    () => true,
    () => false, // missing or unusable: the caller reports why and skips
  );
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false, // any failure means it is not there
  );

/** Why real loop devices with ext4 and block tracing cannot be used here, or undefined. */
export async function loopProblem(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'loop devices, mounts and tracefs need root';
  if (!(await works('losetup', ['--version']))) return 'losetup (util-linux) is missing';
  if (!(await works('mkfs.ext4', ['-V'])))
    return 'mkfs.ext4 is missing (apt-get install -y e2fsprogs)';
  if (!(await works('fsfreeze', ['--version']))) return 'fsfreeze (util-linux) is missing';
  return undefined;
}

/** Everything one test made, undone by `cleanup` in reverse order whatever happened. */
export class Rig {
  private readonly undo: Array<() => Promise<unknown>> = [];

  constructor(readonly dir: string) {}

  /** A tracefs to trace with: the system's when mounted, else a private mount under `dir`. */
  async tracefs(): Promise<string> {
    for (const p of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
      if (await exists(join(p, 'instances'))) return p;
    }
    const mnt = join(this.dir, 'tracefs');
    await mkdir(mnt, { recursive: true });
    await tool('mount', ['-t', 'tracefs', 'nodev', mnt]);
    this.undo.push(() => tool('umount', [mnt]));
    return mnt;
  }

  /** A loop device over a sparse image; with `ext4`, formatted and mounted (the mount point is returned too). */
  async loop(
    name: string,
    sizeMiB: number,
    ext4 = false,
  ): Promise<{ image: string; device: string; mount?: string }> {
    const image = join(this.dir, `${name}.img`);
    const fh = await open(image, 'w');
    await fh.truncate(sizeMiB * 1024 * 1024);
    await fh.close();
    const device = (await tool('losetup', ['--find', '--show', image])).trim();
    this.undo.push(() => tool('losetup', ['-d', device]));
    if (!ext4) return { image, device };
    await tool('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
    const mount = join(this.dir, `${name}-mnt`);
    await mkdir(mount, { recursive: true });
    await tool('mount', [device, mount]);
    this.undo.push(async () => {
      await tool('fsfreeze', ['-u', mount]).catch(() => undefined); // not frozen: nothing to undo
      await tool('umount', ['-l', mount]);
    });
    return { image, device, mount };
  }

  /** Runs something at cleanup time (before what was made earlier is undone). */
  defer(fn: () => Promise<unknown>): void {
    this.undo.push(fn);
  }

  async cleanup(): Promise<void> {
    for (const fn of this.undo.splice(0).reverse()) {
      await fn().catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`));
    }
  }
}
