// Where the incremental's bytes go on bench:wan's realistic disk: each changed block is put under
// what most of its ext4 blocks hold (the journal, the SQLite database, the docs copied in, other
// files and directories, or file system metadata no inode owns), with its compressed size.
// Used by bench/zstd-dictionary.mjs; reads the image with debugfs (e2fsprogs), nothing mounted.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * debugfs's output for the commands in file `cmd`. It exits non-zero when a command reports
 * anything odd (a block no inode owns is one), so its status says nothing here: its output does.
 */
function debugfs(cmd, image) {
  const r = spawnSync('debugfs', ['-f', cmd, image], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  return r.stdout;
}

/**
 * `command` (icheck, ncheck) over every argument in `args`, 500 to a line (debugfs cuts long
 * lines short), as a map from each answer line's leading number to the rest of the line.
 */
function each(work, image, command, args) {
  const cmd = join(work, 'debugfs.cmd');
  const lines = [];
  for (let i = 0; i < args.length; i += 500)
    lines.push(`${command} ${args.slice(i, i + 500).join(' ')}\n`);
  writeFileSync(cmd, lines.join(''));
  const out = new Map();
  for (const line of debugfs(cmd, image).split('\n')) {
    const m = /^(\d+)\s+(\S.*)$/.exec(line.trim());
    if (m) out.set(Number(m[1]), m[2]);
  }
  return out;
}

/** The ext4 block size of `image` and the owner inode of each ext4 block in `fsBlocks`. */
function owners(work, image, fsBlocks) {
  const cmd = join(work, 'debugfs.cmd');
  writeFileSync(cmd, 'stats\n');
  const fsBlock = Number(/Block size:\s+(\d+)/.exec(debugfs(cmd, image))?.[1]);
  const owner = new Map();
  // A block no inode owns answers `<block not found>`: left out.
  for (const [block, inode] of each(work, image, 'icheck', fsBlocks(fsBlock)))
    if (/^\d+$/.test(inode)) owner.set(block, Number(inode));
  return { fsBlock, owner };
}

/** Path of each inode in `inodes` (debugfs ncheck). */
const paths = (work, image, inodes) => each(work, image, 'ncheck', [...inodes]);

function kindOf(inode, path) {
  if (inode === undefined) return 'file system metadata no inode owns (inode tables, bitmaps)';
  if (inode === 8) return 'the ext4 journal';
  const p = path.get(inode) ?? '';
  if (p.startsWith('/var/shop.db')) return 'the SQLite database';
  if (p.startsWith('/share/doc')) return 'the docs copied in';
  return 'other files and directories';
}

/**
 * Changed blocks (`delta`, at block indices `at` of `image`, `blockSize` bytes each) by what they
 * hold, with plain and `compress`ed bytes per kind.
 */
export function whereBytesGo({ work, image, blockSize, at, delta, compress }) {
  const { fsBlock, owner } = owners(work, image, (fs) =>
    at.flatMap((i) => Array.from({ length: blockSize / fs }, (_, k) => (i * blockSize) / fs + k)),
  );
  const path = paths(work, image, new Set(owner.values()));
  const per = blockSize / fsBlock;
  const kinds = new Map();
  delta.forEach((b, n) => {
    const i = at[n] ?? 0;
    const votes = new Map();
    for (let k = 0; k < per; k++) {
      const kind = kindOf(owner.get(i * per + k), path);
      votes.set(kind, (votes.get(kind) ?? 0) + 1);
    }
    const what = [...votes].sort((x, y) => y[1] - x[1])[0]?.[0] ?? 'unknown';
    const row = kinds.get(what) ?? { what, blocks: 0, plain: 0, packed: 0 };
    row.blocks++;
    row.plain += b.length;
    row.packed += compress(b);
    kinds.set(what, row);
  });
  return [...kinds.values()].sort((x, y) => y.packed - x.packed);
}
