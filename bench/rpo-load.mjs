// bench:rpo's disks and load: a fresh ext4 on a loop device per run, and fio writing to it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const sh = (cmd, a) => execFileSync(cmd, a, { encoding: 'utf8' }).trim();

// Fresh data in every write and fresh offsets in every run, so no block repeats one the gateway
// holds (it would travel as a reference): by default fio seeds alike each run (randrepeat=1) and
// reuses one buffer, which only its default scramble_buffers changes a little per write.
const FRESH = ['--refill_buffers', '--randrepeat=0'];

/**
 * Volumes of `image` bytes (a size truncate reads) under `work`, each with a fio file of
 * `fioFile`, and fio random writes at `rate` to one. Each volume's teardown goes onto `undo`.
 */
export function loadRig({ work, undo, image: imageSize, fioFile, rate }) {
  /** A fresh ext4 on a loop device with a fio data file laid out. */
  function volume(name) {
    const image = join(work, `${name}.img`);
    sh('truncate', ['-s', imageSize, image]);
    const device = sh('losetup', ['--find', '--show', image]);
    undo.push(() => sh('losetup', ['-d', device]));
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
    const mount = join(work, `${name}-mnt`);
    mkdirSync(mount);
    sh('mount', [device, mount]);
    undo.push(() => {
      spawnSync('fsfreeze', ['-u', mount]);
      sh('umount', ['-l', mount]);
    });
    sh('fio', [
      '--name=layout',
      `--filename=${join(mount, 'fio.dat')}`,
      `--size=${fioFile}`,
      '--rw=write',
      '--bs=1m',
      '--direct=1',
      ...FRESH,
      '--output=/dev/null',
    ]);
    return { image, device, mount };
  }

  function fio(mount, seconds) {
    return spawn(
      'fio',
      [
        '--name=load',
        `--filename=${join(mount, 'fio.dat')}`,
        `--size=${fioFile}`,
        '--rw=randwrite',
        '--bssplit=4k/50:64k/50',
        `--rate=${rate}`,
        '--direct=1',
        '--ioengine=psync',
        '--time_based',
        `--runtime=${seconds}`,
        ...FRESH,
        '--output=/dev/null',
      ],
      { stdio: 'ignore' },
    );
  }

  return { volume, fio };
}
