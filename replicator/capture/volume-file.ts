import { constants } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { allocAligned } from '../../core/aligned-buffer.js';
import { DrError, systemCode } from '../../core/errors.js';

/** A protected volume opened for reading: a regular image file or a block device. */
export class VolumeFile {
  private constructor(
    readonly name: string,
    readonly path: string,
    private readonly fh: FileHandle,
    readonly isBlockDevice: boolean,
    /** The device number, for a block device. */
    readonly rdev: number,
    private readonly limit: number | undefined,
  ) {}

  /**
   * `limit`: only the first `limit` bytes are the volume (a disk larger than the volume it
   * holds, like a recovered ECS disk rounded up to whole GiB).
   */
  static async open(name: string, path: string, limit?: number): Promise<VolumeFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY);
      if ((await fh.stat()).isBlockDevice()) {
        // A mounted file system writes file data to the device around the
        // device's own page cache: buffered reads can see stale blocks. Read
        // devices with O_DIRECT (into aligned buffers, see allocBuffer).
        await fh.close();
        fh = await open(path, constants.O_RDONLY | constants.O_DIRECT);
      }
    } catch (err) {
      const code = systemCode(err);
      throw new DrError(
        `volume ${name} (${path}) ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : `cannot be opened (${code})`}`,
        {
          code: 'volume_unreadable',
          subject: path,
          remedy:
            code === 'EACCES'
              ? 'run the agent as a user that can read it (root for block devices)'
              : `fix the path with \`dr app add … --volume ${name}=PATH --force\``,
          cause: err,
        },
      );
    }
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) {
      await fh.close();
      throw new DrError(`volume ${name} (${path}) is neither an image file nor a block device`, {
        code: 'volume_unreadable',
        subject: path,
        remedy: 'point the volume at a raw image file or a block device',
      });
    }
    return new VolumeFile(name, path, fh, st.isBlockDevice(), st.rdev, limit);
  }

  /** Current size in bytes (at most the limit it was opened with). */
  async size(): Promise<number> {
    const size = await this.deviceSize();
    return this.limit === undefined ? size : Math.min(size, this.limit);
  }

  /** Block devices report their size through sysfs. */
  private async deviceSize(): Promise<number> {
    if (!this.isBlockDevice) return (await this.fh.stat()).size;
    const major = Math.floor(this.rdev / 256) & 0xfff;
    const minor = (this.rdev & 0xff) | ((this.rdev >> 12) & 0xfff00);
    const sectors = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    return Number(sectors.trim()) * 512;
  }

  /**
   * A buffer `read` can fill: for a block device, aligned to the page as
   * O_DIRECT needs.
   */
  allocBuffer(bytes: number): Buffer {
    return this.isBlockDevice ? allocAligned(bytes) : Buffer.allocUnsafe(bytes);
  }

  /**
   * Reads up to `length` bytes at `position` into `into`; returns the count
   * read. For a block device, `into` comes from allocBuffer and position and
   * length are multiples of 512.
   */
  async read(into: Buffer, position: number, length = into.length): Promise<number> {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(into, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
