// The shape of one environment variable (meaning, default, parse, error) and the parsers the table shares.
import { z } from 'zod';

/** One variable. Unset and blank are the same: the default (`fallback`) or undefined. */
export interface EnvVar<T, D extends T | undefined = T | undefined> {
  /** One line for docs/configuration.md: what it does. */
  about: string;
  /** What happens when it is unset, for the docs (`info`, `off`, `gateway.address from dr.yaml`). */
  unset: string;
  /** The value when unset or blank. */
  fallback: D;
  /** From the text (blanks around it removed) to the value. */
  schema: z.ZodType<T, string>;
  /** What a good value is, in the error: `a count`, `a duration of at least 1s`. */
  expected: string;
  /** The error's words when `is not <expected>` does not fit: `is shorter than 16 characters`. */
  problem?: string;
  remedy: string;
  /**
   * Where the bad value shows in the error: after the name (`X "y" is not …`, the default), at the
   * end (`X is not … ("y")`), or nowhere: a secret, or a URL that may carry a password.
   */
  echo?: 'name' | 'end' | 'never';
}

export function variable<T, D extends T | undefined = undefined>(
  spec: Omit<EnvVar<T, D>, 'fallback'> & { fallback?: D },
): EnvVar<T, D> {
  return { ...spec, fallback: spec.fallback as D };
}

/** A zod schema from a parser that returns undefined for a bad value. */
export function parsedBy<T>(parse: (text: string) => T | undefined): z.ZodType<T, string> {
  return z.string().transform((text, ctx) => {
    const value = parse(text);
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: 'invalid' });
      return z.NEVER;
    }
    return value;
  });
}

export const text = z.string();
export const count = parsedBy((t) => (/^\d+$/.test(t) ? Number(t) : undefined)).refine((n) =>
  Number.isSafeInteger(n),
);
export const httpUrl = parsedBy((t) => {
  try {
    const url = new URL(t);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined; // not a URL at all: the same error as a wrong scheme
  }
});
export const redisUrl = parsedBy((t) => {
  try {
    const url = new URL(t);
    return url.protocol === 'redis:' || url.protocol === 'rediss:' ? t : undefined;
  } catch {
    return undefined; // not a URL at all: the same error as a wrong scheme
  }
});
/** `1` or `0`, for switches. */
export const flag = parsedBy((t) => (t === '1' ? true : t === '0' ? false : undefined));
