import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { homePaths } from '../../core/home.js';
import { runDir } from '../../core/up-state.js';

/** The checkout's `bin/dr.js`, from the sources (vitest) or from dist/ (the built CLI). */
export function drBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const bin = join(dir, 'bin', 'dr.js');
    if (existsSync(bin) && existsSync(join(dir, 'package.json'))) return bin;
    dir = dirname(dir);
  }
  throw new Error('bin/dr.js not found above the CLI'); // a broken checkout: nothing to advise
}

/** Whether DR_HOME has a dr.yaml (is initialised). */
export async function homeInitialised(home: string): Promise<boolean> {
  return stat(homePaths(home).config).then(
    () => true,
    () => false, // missing or unreadable: readConfig says which when it is read
  );
}

/**
 * Makes sure `dr up` can write DR_HOME (its run/ directory and logs live there): creates it where
 * it is missing and writes a probe file. Fails with the path, the reason and the remedy.
 */
export async function ensureWritableHome(home: string): Promise<void> {
  const dir = runDir(home);
  const probe = join(dir, `.probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(probe, 'lifeboat');
    await rm(probe, { force: true });
  } catch (caught) {
    const err = systemCode(caught) === 'ENOENT' ? await realCause(dir, caught) : caught;
    const code = systemCode(err) ?? 'error';
    throw new DrError(
      `DR_HOME ${resolve(home)} is not writable (${code}: ${errorMessage(err).replace(/^\w+: /, '')})`,
      {
        code: 'home_unwritable',
        subject: resolve(home),
        remedy:
          code === 'EROFS'
            ? 'it is on a read-only file system: point DR_HOME (or --home) at a writable directory'
            : `give this user write access to it (\`ls -ld ${resolve(home)}\`) or point DR_HOME (or --home) at a writable directory`,
        cause: err,
      },
    );
  }
}

/**
 * A recursive mkdir reports ENOENT where the real trouble is a read-only or forbidden parent:
 * find the first missing directory and try to make it alone, which gives the true reason.
 */
async function realCause(dir: string, fallback: unknown): Promise<unknown> {
  let missing = dir;
  while (dirname(missing) !== missing && !existsSync(dirname(missing))) missing = dirname(missing);
  try {
    await mkdir(missing);
    await rm(missing, { recursive: true, force: true });
    return fallback;
  } catch (err) {
    return err;
  }
}

/** Runs `dr …` to completion (init and the like), failing with its own error text. */
export function runDr(args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [drBin(), ...args], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || r.error?.message || '').trim().replace(/^dr: /, '');
    throw new DrError(`\`dr ${args.join(' ')}\` failed: ${why}`, {
      code: 'child_failed',
      subject: args[0] ?? 'dr',
    });
  }
  return r.stdout;
}
