/** The app settings of an agent replicating an app's way home (`dr agent --reverse`). */
import type { AppConfig } from '../core/config.js';
import { usageError } from './context.js';

/**
 * The app as it runs on the recovered server: the same volumes (names, block size, quiesce),
 * found at the paths `--volume NAME=PATH` gives, each limited to `--size NAME=BYTES` (a cloud
 * disk is rounded up to whole GiB; only the volume's own bytes go home).
 */
export function reverseVolumes(
  app: string,
  appConfig: AppConfig,
  volumes: string[],
  sizes: string[],
): AppConfig {
  const paths = pairs('--volume', volumes, 'NAME=PATH');
  const limits = pairs('--size', sizes, 'NAME=BYTES');
  const known = new Set(appConfig.volumes.map((v) => v.name));
  for (const name of [...paths.keys(), ...limits.keys()]) {
    if (!known.has(name)) {
      throw usageError(
        `${app} has no volume ${name}`,
        `name its volumes: ${[...known].join(', ')}`,
      );
    }
  }
  return {
    ...appConfig,
    volumes: appConfig.volumes.map((v) => {
      const path = paths.get(v.name);
      if (path === undefined) {
        throw usageError(
          `--reverse needs --volume ${v.name}=PATH`,
          'give every volume of the app with its path on this server',
        );
      }
      const raw = limits.get(v.name);
      if (raw === undefined) return { name: v.name, path };
      const size = Number(raw);
      if (!Number.isSafeInteger(size) || size <= 0) {
        throw usageError(
          `--size ${v.name}=${raw} is not a size in bytes`,
          'write it like data=4194304',
        );
      }
      return { name: v.name, path, size };
    }),
  };
}

function pairs(flag: string, values: string[], form: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of values) {
    const at = raw.indexOf('=');
    if (at <= 0 || at === raw.length - 1)
      throw usageError(`${flag} ${raw} is not ${form}`, `write it like ${flag} ${form}`);
    out.set(raw.slice(0, at), raw.slice(at + 1));
  }
  return out;
}
