import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The default policies shipped with Lifeboat (`policies/` at the package root). */
export async function shippedPoliciesDir(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'policies');
    const isPkg = await stat(join(dir, 'package.json')).then(
      () => true,
      () => false, // not the package root: keep walking up
    );
    if (isPkg) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find the shipped policies/ directory beside package.json');
}

/** Copies the shipped policies (and their test cases) into `target`, leaving files already there alone. */
export async function copyShippedPolicies(target: string): Promise<string[]> {
  const from = await shippedPoliciesDir();
  await mkdir(target, { recursive: true });
  const existing = new Set(await readdir(target));
  const copied: string[] = [];
  for (const name of (await readdir(from)).sort()) {
    if (!/\.ya?ml$/.test(name) || existing.has(name)) continue;
    await copyFile(join(from, name), join(target, name));
    copied.push(name);
  }
  return copied;
}
