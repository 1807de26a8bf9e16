// Small helpers of the demo scripts: their command line, whether a file is there.
import { stat } from 'node:fs/promises';

/** The value after NAME on the demo script's command line (`--state FILE`), if given. */
export function scriptArg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Whether the file is there. */
export const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false, // not there
  );
