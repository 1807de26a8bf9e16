/** Where the demo's compiled scripts are, and how a path goes into a shell command. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A compiled demo script: beside this module in dist/, or under dist/ when run from sources. */
export function demoScript(name: string): string {
  const beside = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(beside)) return beside;
  return fileURLToPath(new URL(`../../dist/cli/demo/${name}.js`, import.meta.url));
}

/** A word for `sh`: single-quoted, any single quote in it escaped. */
export const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
