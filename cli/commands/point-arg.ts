import { usageError } from '../context.js';

/** `--point` takes a point id or `latest`. */
export function pointArg(text: string): number | 'latest' {
  if (text === 'latest') return 'latest';
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw usageError(
      `--point ${JSON.stringify(text)} is not a point id`,
      'give an id from `dr points APP`, or latest',
    );
  }
  return n;
}
