/** The one check of every identifier that crosses a boundary (CLI, chat, HTTP, dr.yaml, job data). */
import { z } from 'zod';
import { DrError } from './errors.js';

/** App names: lower-case letters, digits and -; they name directories and Redis keys. */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/**
 * The gateway's app id of an app's way home: what an agent on the recovered server (after a
 * failover into a cloud) replicates as, so the failback can bring it back to the original volumes.
 */
export const reverseAppId = (app: string): string => `${app}--home`;
/** The app whose way home `id` replicates (`web` for `web--home`), or undefined. */
export const reversedApp = (id: string): string | undefined => /^(.+)--home$/.exec(id)?.[1];
/** Volume names: lower-case letters, digits, - and _. */
export const VOLUME_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Operation ids name directories and Redis keys, so they are kept to a safe alphabet. */
export const OP_ID = /^op-[a-z0-9]{4,40}$/;

export const appNameSchema = z
  .string()
  .regex(APP_NAME, 'app names are lower-case letters, digits and - (at most 63)');
export const volumeNameSchema = z
  .string()
  .regex(VOLUME_NAME, 'volume names are lower-case letters, digits, - and _ (at most 63)');
export const opIdSchema = z
  .string()
  .regex(OP_ID, 'operation ids look like op-… with lower-case letters and digits');
/** A point id: a positive integer (as a number, or its decimal text). */
export const pointIdSchema = z.union([
  z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/, 'point ids are positive whole numbers')
    .transform(Number)
    .refine(Number.isSafeInteger, 'point ids are positive whole numbers'),
]);
/** A point reference: an id, or `latest`. */
export const pointRefSchema = z.union([z.literal('latest'), pointIdSchema]);

export type NameKind = 'app' | 'volume' | 'operation' | 'point';

const SCHEMAS = {
  app: appNameSchema,
  volume: volumeNameSchema,
  operation: opIdSchema,
  point: pointRefSchema,
} as const;

const REMEDIES: Record<NameKind, string> = {
  app: 'use an app name from `dr app list` (lower-case letters, digits and -)',
  volume: 'use a volume name from dr.yaml (lower-case letters, digits, - and _)',
  operation: 'use the operation id `dr drill` or `dr failover` printed (op-…)',
  point: 'give a point id from `dr points APP`, or latest',
};

export type NameOf<K extends NameKind> = z.output<(typeof SCHEMAS)[K]>;

/** Whether `value` is a valid name of this kind. */
export function isName(kind: NameKind, value: unknown): boolean {
  return SCHEMAS[kind].safeParse(value).success;
}

/**
 * Checks one identifier and returns it (a point reference parsed to a number
 * or `latest`); anything else is a one-line `bad_request` error naming the
 * input, where it came from, and the remedy. Nothing may be joined into a
 * path or a key without passing here.
 */
export function checkName<K extends NameKind>(kind: K, value: unknown, where?: string): NameOf<K> {
  const parsed = SCHEMAS[kind].safeParse(value);
  if (parsed.success) return parsed.data as NameOf<K>;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : String(value);
  throw new DrError(
    `${where ? `${where}: ` : ''}${shown} is not a valid ${kind === 'operation' ? 'operation id' : kind === 'point' ? 'point id' : `${kind} name`}`,
    {
      code: 'bad_request',
      subject: typeof value === 'string' ? value.slice(0, 80) : kind,
      remedy: REMEDIES[kind],
    },
  );
}
