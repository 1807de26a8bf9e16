// The realistic disk of bench:wan: an ext4 image of real files from /usr, then a day's changes.
// Shared by bench/wan.mjs and bench/zstd-dictionary.mjs so both measure the same data.
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * Image builders over `work` (a scratch directory): `sh(cmd, args, opts)` runs a command, and
 * `mounted` (a Set) holds what is mounted now so the caller can unmount it on a crash.
 */
export function wanImages({ sh, work, mounted, imageMiB, fillBytes, rows, docBytes }) {
  /** Copies regular files and links from `sources` into `dest` until `budget` bytes are copied. */
  function fill(dest, sources, budget) {
    let copied = 0;
    const walk = (from, to) => {
      if (copied >= budget) return;
      let entries;
      try {
        entries = readdirSync(from, { withFileTypes: true });
      } catch {
        return; // unreadable: leave it out
      }
      mkdirSync(to, { recursive: true });
      for (const e of entries) {
        if (copied >= budget) return;
        const f = join(from, e.name);
        const t = join(to, e.name);
        if (e.isDirectory()) walk(f, t);
        else if (e.isSymbolicLink()) symlinkSync(readlinkSync(f), t);
        else if (e.isFile()) {
          try {
            copyFileSync(f, t);
            copied += lstatSync(t).size;
          } catch {
            // unreadable or the image is full: skip it
          }
        }
      }
    };
    for (const [from, to] of sources) walk(from, join(dest, to));
    return copied;
  }

  function mountImage(image, dir, ro = false) {
    mkdirSync(dir, { recursive: true });
    sh('mount', ['-o', ro ? 'loop,ro' : 'loop', image, dir]);
    mounted.add(dir);
    return () => {
      sh('umount', [dir]);
      mounted.delete(dir);
    };
  }

  function sqliteRows(db, rows, from) {
    const sql = `CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, customer TEXT, item TEXT, qty INT, note TEXT);
  BEGIN;
  WITH RECURSIVE n(i) AS (SELECT ${from} UNION ALL SELECT i+1 FROM n WHERE i < ${from + rows - 1})
  INSERT INTO orders SELECT i, 'customer-' || (i % 977), 'item-' || (i % 131), i % 7, hex(randomblob(24)) FROM n;
  COMMIT;`;
    sh('sqlite3', [db], { input: sql });
  }

  /** initial.img (real files, a small database) and changed.img (a day later). */
  function prepareImages() {
    const initial = join(work, 'initial.img');
    const changed = join(work, 'changed.img');
    sh('truncate', ['-s', `${imageMiB}M`, initial]);
    // Inode tables and journal written now: no ext4lazyinit writes while the agent runs on it.
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', initial]);
    const mnt = join(work, 'mnt');
    let umount = mountImage(initial, mnt);
    const copied = fill(
      mnt,
      [
        ['/usr/share/locale', 'share/locale'],
        ['/usr/bin', 'bin'],
        ['/usr/lib/x86_64-linux-gnu', 'lib'],
      ],
      fillBytes,
    );
    mkdirSync(join(mnt, 'var'), { recursive: true });
    sqliteRows(join(mnt, 'var/shop.db'), rows / 4, 1);
    umount();
    sh('cp', ['--sparse=always', initial, changed]);
    umount = mountImage(changed, mnt);
    const docs = dayOfChanges(mnt);
    umount();
    return { initial, changed, copied, docs };
  }

  /** A day's changes to the file system mounted at `mnt`: +rows rows, docs copied in, locales removed. */
  function dayOfChanges(mnt) {
    sqliteRows(join(mnt, 'var/shop.db'), rows, rows / 4 + 1);
    const docs = fill(mnt, [['/usr/share/doc', 'share/doc']], docBytes);
    rmSync(join(mnt, 'share/locale'), { recursive: true, force: true });
    return docs;
  }

  return { fill, mountImage, sqliteRows, prepareImages, dayOfChanges };
}
