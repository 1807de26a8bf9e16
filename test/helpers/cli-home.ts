// The CLI unit tests' rig: `dr …` run in this process with its output as the terminal would show
// it, and a fresh folder per test with a home path (not created) and a small disk image.
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dr } from './lifeboat-home.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `dr …` in this process and captures what it prints. */
export async function drCli(...args: string[]): Promise<CliResult> {
  const r = await dr(args);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

/** A file's permission bits. */
export const fileMode = async (path: string) => (await stat(path)).mode & 0o777;

/** A fresh folder: `home` in it (not there yet) and `disk`, a 64 KiB image file. */
export async function cliFolder(): Promise<{ dir: string; home: string; disk: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-'));
  const disk = join(dir, 'disk.img');
  await writeFile(disk, Buffer.alloc(64 * 1024));
  return { dir, home: join(dir, 'home'), disk };
}
