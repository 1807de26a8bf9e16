/** Lists the file names inside an initramfs: cpio "newc" archives, concatenated, some compressed. */
import { execFile } from 'node:child_process';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

const exec = promisify(execFile);

/** Decompressors by magic number; gzip is built in, the others are the system's tools. */
const tools: { magic: Buffer; name: string; command?: string[] }[] = [
  { magic: Buffer.from([0x1f, 0x8b]), name: 'gzip' },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), name: 'zstd', command: ['zstd', '-dc'] },
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), name: 'xz', command: ['xz', '-dc'] },
  { magic: Buffer.from([0x02, 0x21, 0x4c, 0x18]), name: 'lz4', command: ['lz4', '-dc'] },
  { magic: Buffer.from([0x04, 0x22, 0x4d, 0x18]), name: 'lz4', command: ['lz4', '-dc'] },
];

export interface InitramfsFiles {
  names: string[];
  /** Why part of it could not be read (a decompressor missing here, a format not known). */
  unreadable?: string;
}

async function decompress(data: Buffer, path: string): Promise<Buffer | string> {
  const tool = tools.find((t) => data.subarray(0, t.magic.length).equals(t.magic));
  if (!tool) return `unknown compression (${data.subarray(0, 4).toString('hex')})`;
  if (!tool.command) return gunzipSync(data);
  const [cmd = '', ...args] = tool.command;
  try {
    const { stdout } = await exec(cmd, [...args, path], {
      encoding: 'buffer',
      maxBuffer: 1024 * 1024 * 1024,
      timeout: 120_000,
    });
    return stdout;
  } catch (err) {
    return `${tool.name} could not unpack it (${(err as Error).message.split('\n')[0]})`;
  }
}

/**
 * The names in an initramfs file. An early uncompressed cpio (microcode) may come first; the
 * main archive follows it, compressed. Reads only headers and names.
 */
export async function initramfsFiles(path: string): Promise<InitramfsFiles> {
  let data: Buffer = await readFile(path);
  const names: string[] = [];
  for (let round = 0; round < 8; round++) {
    let at = 0;
    while (at + 110 <= data.length && data.subarray(at, at + 6).toString('latin1') === '070701') {
      const field = (n: number) =>
        Number.parseInt(data.subarray(at + 6 + n * 8, at + 14 + n * 8).toString('latin1'), 16);
      const fileSize = field(6);
      const nameSize = field(11);
      const name = data
        .subarray(at + 110, at + 110 + nameSize - 1)
        .toString('utf8')
        .replace(/^\.\//, '');
      at = align4(align4(at + 110 + nameSize) + fileSize);
      if (name === 'TRAILER!!!') {
        // Archives are padded with zeros to a block: skip them to whatever comes next.
        while (at < data.length && data[at] === 0) at++;
        continue;
      }
      names.push(name);
    }
    if (at >= data.length) return { names };
    const rest = data.subarray(at);
    const tmp = `${path}.part${round}`;
    await writeFile(tmp, rest);
    try {
      const out = await decompress(rest, tmp);
      if (typeof out === 'string') return { names, unreadable: out };
      data = out;
    } finally {
      await unlink(tmp);
    }
  }
  return { names, unreadable: 'too many nested archives' };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
