/** Reads files from an ext2/3/4 file system inside an image, read-only, through e2fsprogs' debugfs. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface ExtEntry {
  name: string;
  dir: boolean;
  size: number;
}

/**
 * One ext file system at a byte offset of an image. debugfs opens it read-only (no `-w`) and
 * takes the offset as an io option (`image?offset=N`), so nothing is mounted and nothing needs root.
 */
export class ExtReader {
  private readonly spec: string;

  constructor(
    image: string,
    offset: number,
    private readonly debugfs = 'debugfs',
  ) {
    this.spec = offset > 0 ? `${image}?offset=${offset}` : image;
  }

  private async run(command: string, maxBuffer = 16 * 1024 * 1024): Promise<Buffer | undefined> {
    const { stdout, stderr } = await exec(this.debugfs, ['-R', command, this.spec], {
      encoding: 'buffer',
      maxBuffer,
      timeout: 60_000,
    });
    // debugfs reports a missing path on stderr and still exits 0.
    if (/not found|No such file|Bad magic|Couldn't find/i.test(stderr.toString('utf8'))) {
      return undefined;
    }
    return stdout;
  }

  /** A file's contents, or undefined when it does not exist. */
  async read(path: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer | undefined> {
    return this.run(`cat "${path}"`, maxBytes);
  }

  async text(path: string): Promise<string | undefined> {
    return (await this.read(path, 4 * 1024 * 1024))?.toString('utf8');
  }

  /** A directory's entries (without . and ..), or undefined when it does not exist. */
  async list(dir: string): Promise<ExtEntry[] | undefined> {
    const out = await this.run(`ls -p "${dir}"`);
    if (out === undefined) return undefined;
    const entries: ExtEntry[] = [];
    // Lines like /12/040755/0/0/boot//  and  /13/100644/0/0/fstab/42/
    for (const line of out.toString('utf8').split('\n')) {
      const m = /^\/(\d+)\/(\d+)\/\d+\/\d+\/(.*)\/(\d*)\/$/.exec(line.trim());
      if (!m) continue;
      const [, , mode = '', name = '', size = ''] = m;
      if (name === '.' || name === '..' || name === '') continue;
      entries.push({ name, dir: mode.startsWith('04'), size: Number(size || 0) });
    }
    return entries;
  }

  /** Copies a file out of the image into a path on this machine. */
  async dump(path: string, to: string): Promise<boolean> {
    return (await this.run(`dump "${path}" "${to}"`)) !== undefined;
  }
}

/** Whether debugfs runs here; the reason when it does not. */
export async function debugfsMissing(debugfs = 'debugfs'): Promise<string | undefined> {
  try {
    await exec(debugfs, ['-V'], { timeout: 10_000 });
    return undefined;
  } catch {
    return `${debugfs} (e2fsprogs) is not installed on the worker`;
  }
}
