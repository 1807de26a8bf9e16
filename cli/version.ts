/** Lifeboat's version, from the package.json of the checkout or install that runs. */
import { readFileSync } from 'node:fs';

/** `0.1.0`; read from package.json beside dist/ (or beside cli/ when run from source). */
export function lifeboatVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'lifeboat' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this level (source vs dist layout): try the next one
    }
  }
  return 'unknown';
}

/** What `dr --version` prints: the version, and the Node that runs it. */
export function versionLine(): string {
  return `lifeboat ${lifeboatVersion()} (node ${process.versions.node})`;
}
