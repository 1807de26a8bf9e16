/** Reads a raw disk image's partition table (MBR or GPT) and names each partition's file system. */
import { type FileHandle, open } from 'node:fs/promises';

export type FsType = 'ext' | 'xfs' | 'btrfs' | 'swap' | 'lvm' | 'vfat' | 'unknown';

export interface Partition {
  /** 1-based, as Linux numbers them (sda1); 0 for a file system on the whole disk. */
  number: number;
  offset: number;
  size: number;
  fs: FsType;
  /** GPT type GUID (lower case) or MBR type byte as two hex digits. */
  type: string;
}

export interface DiskLayout {
  table: 'gpt' | 'mbr' | 'none';
  partitions: Partition[];
  /** A GPT EFI system partition is present. */
  efi: boolean;
  /** A GPT BIOS boot partition is present, or the table is MBR (which boots by BIOS). */
  bios: boolean;
}

const SECTOR = 512;
const ESP = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
const BIOS_BOOT = '21686148-6449-6e6f-744e-656564454649';

async function read(f: FileHandle, at: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await f.read(buf, 0, length, at);
  return buf.subarray(0, bytesRead);
}

/** The GUID in its text form from its mixed-endian bytes. */
function guid(b: Buffer): string {
  const hex = (x: Buffer) => x.toString('hex');
  const le = (x: Buffer) => hex(Buffer.from(x).reverse());
  return [
    le(b.subarray(0, 4)),
    le(b.subarray(4, 6)),
    le(b.subarray(6, 8)),
    hex(b.subarray(8, 10)),
    hex(b.subarray(10, 16)),
  ].join('-');
}

/** The file system at `offset`, by its magic numbers. */
async function fsAt(f: FileHandle, offset: number): Promise<FsType> {
  const head = await read(f, offset, 0x10048);
  if (head.length >= 0x43a && head.readUInt16LE(0x438) === 0xef53) return 'ext';
  if (head.subarray(0, 4).toString('latin1') === 'XFSB') return 'xfs';
  if (head.subarray(0x10040, 0x10048).toString('latin1') === '_BHRfS_M') return 'btrfs';
  if (head.subarray(4086, 4096).toString('latin1') === 'SWAPSPACE2') return 'swap';
  if (head.subarray(512, 520).toString('latin1') === 'LABELONE') return 'lvm';
  if (
    head.subarray(82, 87).toString('latin1') === 'FAT32' ||
    head.subarray(54, 57).toString('latin1') === 'FAT'
  )
    return 'vfat';
  return 'unknown';
}

/** The layout of a raw disk image, read-only. */
export async function readDiskLayout(image: string): Promise<DiskLayout> {
  const f = await open(image, 'r');
  try {
    const { size } = await f.stat();
    const mbr = await read(f, 0, SECTOR);
    const gptHeader = await read(f, SECTOR, 92);
    if (gptHeader.subarray(0, 8).toString('latin1') === 'EFI PART') {
      const entriesAt = Number(gptHeader.readBigUInt64LE(72)) * SECTOR;
      const count = Math.min(gptHeader.readUInt32LE(80), 256);
      const entrySize = gptHeader.readUInt32LE(84);
      const entries = await read(f, entriesAt, count * entrySize);
      const partitions: Partition[] = [];
      for (let i = 0; i < count; i++) {
        const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
        if (e.length < 48 || e.subarray(0, 16).every((b) => b === 0)) continue;
        const first = Number(e.readBigUInt64LE(32));
        const last = Number(e.readBigUInt64LE(40));
        const offset = first * SECTOR;
        if (offset >= size) continue;
        partitions.push({
          number: i + 1,
          offset,
          size: (last - first + 1) * SECTOR,
          fs: await fsAt(f, offset),
          type: guid(e.subarray(0, 16)),
        });
      }
      return {
        table: 'gpt',
        partitions,
        efi: partitions.some((p) => p.type === ESP),
        bios: partitions.some((p) => p.type === BIOS_BOOT),
      };
    }
    if (mbr.length === SECTOR && mbr[510] === 0x55 && mbr[511] === 0xaa) {
      const partitions: Partition[] = [];
      for (let i = 0; i < 4; i++) {
        const e = mbr.subarray(446 + 16 * i, 462 + 16 * i);
        const type = e[4] ?? 0;
        const start = e.readUInt32LE(8);
        const sectors = e.readUInt32LE(12);
        if (type === 0 || sectors === 0 || start * SECTOR >= size) continue;
        partitions.push({
          number: i + 1,
          offset: start * SECTOR,
          size: sectors * SECTOR,
          fs: type === 0x05 || type === 0x0f ? 'unknown' : await fsAt(f, start * SECTOR),
          type: type.toString(16).padStart(2, '0'),
        });
      }
      // A boot sector with no partitions may still be a file system (FAT has 55AA too).
      if (partitions.length > 0) return { table: 'mbr', partitions, efi: false, bios: true };
    }
    return {
      table: 'none',
      partitions: [{ number: 0, offset: 0, size, fs: await fsAt(f, 0), type: '' }],
      efi: false,
      bios: true,
    };
  } finally {
    await f.close();
  }
}
