/** The value after NAME on the demo script's command line (`--state FILE`), if given. */
export function scriptArg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
