import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dr } from '../helpers/lifeboat-home.js';
import { checkRecordPrefix, RECORD_BYTES } from '../helpers/records.js';

const run = promisify(execFile);
const quiet = { DR_LOG_LEVEL: 'silent' };

/** What one restored point held. */
export interface PointRecords {
  point: number;
  /** Records per volume, in the order the writer writes them (first volume first). */
  counts: number[];
}

/** `dr restore` of one volume of a point into `to`; throws with dr's own message when it refuses. */
export async function restorePoint(
  home: string,
  app: string,
  point: number,
  volume: string,
  to: string,
): Promise<void> {
  const r = await dr(
    [
      '--home',
      home,
      'restore',
      app,
      '--point',
      String(point),
      '--volume',
      volume,
      '--to',
      to,
      '--force',
      '--allow-fuzzy',
    ],
    quiet,
  );
  if (r.code !== 0)
    throw new Error(`restore of point ${point} volume ${volume} failed: ${r.err.trim()}`);
}

/** Reads a file out of an ext4 image without mounting it (no loop device needed). */
export async function readFromExt4(image: string, file: string): Promise<Buffer> {
  await run('e2fsck', ['-n', '-f', image], { timeout: 120_000 }).catch(
    (err: { stdout?: string }) => {
      throw new Error(
        `e2fsck found the file system of ${image} damaged: ${String(err.stdout ?? err).slice(0, 500)}`,
      );
    },
  );
  const { stdout } = await run('debugfs', ['-R', `cat ${file}`, image], {
    encoding: 'buffer',
    maxBuffer: 1024 * 1024 * 1024,
    timeout: 120_000,
  });
  return stdout;
}

/**
 * Restores a point's volumes and checks that each holds a clean ext4 with a
 * gap-free prefix of intact records, and that the volumes agree as one cut
 * of the pair writer would leave them (second ≤ first ≤ second + 1).
 */
export async function checkPointRecords(o: {
  home: string;
  app: string;
  point: number;
  volumes: string[];
  /** The records file inside each volume's ext4, or `raw` when the records are the volume itself. */
  file: string | 'raw';
  scratch: string;
  /** Keep the restored images (for block comparison); the caller removes them. */
  keep?: boolean;
}): Promise<PointRecords & { images: string[] }> {
  const counts: number[] = [];
  const images: string[] = [];
  for (const v of o.volumes) {
    const img = join(o.scratch, `point-${o.point}-${v}.img`);
    images.push(img);
    await restorePoint(o.home, o.app, o.point, v, img);
    try {
      counts.push(
        o.file === 'raw'
          ? await countRawRecords(img)
          : checkRecordPrefix(await readFromExt4(img, o.file)),
      );
    } catch (err) {
      throw new Error(`point ${o.point} volume ${v}: ${(err as Error).message}`);
    }
  }
  checkOneInstant(o.point, o.volumes, counts);
  if (!o.keep) for (const img of images) await rm(img, { force: true });
  return { point: o.point, counts, images };
}

const ZERO_RECORD = Buffer.alloc(RECORD_BYTES);

/**
 * Records written straight into a raw volume from offset 0: every record up
 * to the first one that does not check out must be intact and in sequence,
 * and everything after it zeros (a record beyond would be a gap).
 */
export async function countRawRecords(image: string): Promise<number> {
  const data = await readFile(image);
  let n = 0;
  while ((n + 1) * RECORD_BYTES <= data.length) {
    const r = data.subarray(n * RECORD_BYTES, (n + 1) * RECORD_BYTES);
    if (r.equals(ZERO_RECORD)) break;
    try {
      checkRecordPrefix(r, n);
    } catch (err) {
      throw new Error(`${(err as Error).message} (of ${image})`);
    }
    n++;
  }
  for (let at = n + 1; (at + 1) * RECORD_BYTES <= data.length; at++) {
    if (!data.subarray(at * RECORD_BYTES, (at + 1) * RECORD_BYTES).equals(ZERO_RECORD))
      throw new Error(`record ${at} is written but record ${n} is missing: a gap (of ${image})`);
  }
  return n;
}

/**
 * The pair writer writes record n to the first volume, then to the second:
 * a cut of both at one instant holds second ≤ first ≤ second + 1.
 */
export function checkOneInstant(
  point: number,
  volumes: readonly string[],
  counts: readonly number[],
): void {
  const [a, b] = counts;
  if (a === undefined || b === undefined) return;
  if (b > a || a > b + 1) {
    throw new Error(
      `point ${point} is not one instant across volumes: ${volumes[0]} holds ${a} records, ${volumes[1]} holds ${b}`,
    );
  }
}

/** Blocks that differ between two files of one size, counted in bytes of whole blocks. */
export async function changedBytes(a: string, b: string, blockSize: number): Promise<number> {
  const fa = await open(a, 'r');
  const fb = await open(b, 'r');
  try {
    const size = Math.max((await fa.stat()).size, (await fb.stat()).size);
    const chunk = blockSize * 64;
    const ba = Buffer.alloc(chunk);
    const bb = Buffer.alloc(chunk);
    let changed = 0;
    for (let off = 0; off < size; off += chunk) {
      ba.fill(0);
      bb.fill(0);
      await fa.read(ba, 0, chunk, off);
      await fb.read(bb, 0, chunk, off);
      for (let o = 0; o < chunk && off + o < size; o += blockSize) {
        if (!ba.subarray(o, o + blockSize).equals(bb.subarray(o, o + blockSize)))
          changed += blockSize;
      }
    }
    return changed;
  } finally {
    await fa.close();
    await fb.close();
  }
}

/** `dr verify APP --point ID`: every block authenticated; returns dr's complaint, or undefined when it passes. */
export async function verifyPoint(
  home: string,
  app: string,
  point?: number,
): Promise<string | undefined> {
  const r = await dr(
    ['--home', home, 'verify', app, ...(point ? ['--point', String(point)] : [])],
    quiet,
  );
  return r.code === 0
    ? undefined
    : `dr verify ${app}${point ? ` --point ${point}` : ''} exited ${r.code}: ${(r.err || r.out).trim().slice(0, 500)}`;
}

/** What a SQLite database restored from a point holds. */
export interface SqliteState {
  rows: number;
  maxId: number;
}

/**
 * Takes the SQLite database `file` (with its journal or WAL, when there is one) out of an ext4
 * image and opens it as the app would after a power loss: `PRAGMA integrity_check` must say ok.
 * Resolves the rows of its `orders` table (see test/fixtures/sqlite-writer.mjs).
 */
export async function checkSqlite(
  image: string,
  file: string,
  scratch: string,
): Promise<SqliteState> {
  const dir = await mkdtemp(join(scratch, 'sqlite-'));
  try {
    const db = join(dir, 'db');
    for (const suffix of ['', '-journal', '-wal']) {
      await run('debugfs', ['-R', `dump ${file}${suffix} ${db}${suffix}`, image], {
        timeout: 120_000,
      });
    }
    const size = (await stat(db).catch(() => undefined))?.size ?? 0;
    if (size === 0) throw new Error(`${file} is missing from ${image}`);
    const { stdout } = await run(
      'sqlite3',
      [
        '-batch',
        db,
        "PRAGMA integrity_check; SELECT count(*) || ' ' || coalesce(max(id), 0) FROM orders;",
      ],
      { timeout: 120_000 },
    ).catch((err: { stderr?: string; message: string }) => {
      throw new Error(
        `sqlite3 cannot read ${file} of ${image}: ${(err.stderr || err.message).trim()}`,
      );
    });
    const lines = stdout.trim().split('\n');
    if (lines[0] !== 'ok')
      throw new Error(
        `PRAGMA integrity_check of ${file} in ${image}: ${lines.slice(0, -1).join('; ').slice(0, 400)}`,
      );
    const [rows, maxId] = (lines[1] ?? '').split(' ').map(Number);
    return { rows: rows ?? 0, maxId: maxId ?? 0 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Why databases cannot be checked here (no sqlite3), or undefined. */
export function sqliteMissing(): string | undefined {
  const r = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'sqlite3 is not installed (apt-get install sqlite3)';
}
