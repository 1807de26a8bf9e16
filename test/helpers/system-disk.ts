/** Builds real system disk images for tests: a partition table, an ext4 root made by mkfs.ext4 -d, an initramfs. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const exec = promisify(execFile);
const MiB = 1024 * 1024;

/** Why these tests cannot run here, if they cannot. */
export async function systemDiskToolsMissing(): Promise<string | undefined> {
  for (const [tool, pkg] of [
    ['mkfs.ext4', 'e2fsprogs'],
    ['debugfs', 'e2fsprogs'],
    // initramfs images of current distributions are zstd-compressed; the tests make one
    ['zstd', 'zstd'],
  ] as const) {
    try {
      await exec(tool, ['-V']);
    } catch {
      return `${tool} (${pkg}) is not installed`;
    }
  }
  return undefined;
}

/** A cpio "newc" archive of regular files (and their directories implied), as initramfs tools write it. */
export function cpioNewc(files: Record<string, Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const entry = (name: string, data: Buffer, mode: number) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const header = `070701${[ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0].map(hex).join('')}`;
    const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
    parts.push(Buffer.from(header), nameBytes, pad(110 + nameBytes.length), data, pad(data.length));
  };
  for (const [name, data] of Object.entries(files)) {
    entry(name, Buffer.isBuffer(data) ? data : Buffer.from(data), 0o100644);
  }
  entry('TRAILER!!!', Buffer.alloc(0), 0);
  const out = Buffer.concat(parts);
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

export const gzip = (b: Buffer): Buffer => gzipSync(b);

export async function zstd(b: Buffer): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-zstd-'));
  try {
    await writeFile(join(dir, 'in'), b);
    await exec('zstd', ['-q', '-f', join(dir, 'in'), '-o', join(dir, 'out')]);
    return await readFile(join(dir, 'out'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface DiskSpec {
  /** Files of the root file system, by absolute path. */
  files: Record<string, Buffer | string>;
  table?: 'mbr' | 'gpt-efi' | 'none';
  sizeMiB?: number;
}

/**
 * A raw disk image: an MBR (or a GPT with an EFI system partition first) and one ext4 partition
 * from 1 MiB holding `files`, made without root by `mkfs.ext4 -d`.
 */
export async function makeSystemDisk(path: string, spec: DiskSpec): Promise<void> {
  const sizeMiB = spec.sizeMiB ?? 48;
  const tree = await mkdtemp(join(tmpdir(), 'lifeboat-root-'));
  try {
    for (const [file, data] of Object.entries(spec.files)) {
      const to = join(tree, file);
      await mkdir(dirname(to), { recursive: true });
      await writeFile(to, data);
    }
    const table = spec.table ?? 'mbr';
    const rootAt = table === 'none' ? 0 : table === 'gpt-efi' ? 9 * MiB : MiB;
    const f = await open(path, 'w');
    await f.truncate(sizeMiB * MiB);
    await f.close();
    await exec('mkfs.ext4', [
      '-q',
      '-F',
      '-E',
      `offset=${rootAt}`,
      '-d',
      tree,
      path,
      `${sizeMiB - rootAt / MiB - 1}M`,
    ]);
    const disk = await open(path, 'r+');
    try {
      if (table === 'mbr') {
        const mbr = Buffer.alloc(512);
        mbr[446 + 4] = 0x83;
        mbr.writeUInt32LE(rootAt / 512, 446 + 8);
        mbr.writeUInt32LE((sizeMiB - 2) * 2048, 446 + 12);
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        await disk.write(mbr, 0, 512, 0);
      } else if (table === 'gpt-efi') {
        const header = Buffer.alloc(92);
        header.write('EFI PART', 0, 'latin1');
        header.writeBigUInt64LE(2n, 72);
        header.writeUInt32LE(2, 80);
        header.writeUInt32LE(128, 84);
        await disk.write(header, 0, 92, 512);
        const entries = Buffer.alloc(256);
        const esp = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
        const linux = Buffer.from('af3dc60f838472478e793d69d8477de4', 'hex');
        esp.copy(entries, 0);
        entries.writeBigUInt64LE(2048n, 32);
        entries.writeBigUInt64LE(BigInt(rootAt / 512 - 1), 40);
        linux.copy(entries, 128);
        entries.writeBigUInt64LE(BigInt(rootAt / 512), 128 + 32);
        entries.writeBigUInt64LE(BigInt((sizeMiB - 1) * 2048 - 1), 128 + 40);
        await disk.write(entries, 0, 256, 1024);
      }
    } finally {
      await disk.close();
    }
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}
