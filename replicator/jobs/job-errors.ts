import { UnrecoverableError } from 'bullmq';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';

/** Gateway and store errors a retry cannot fix. */
const PERMANENT = new Set([
  'app_unknown',
  'point_unknown',
  'key_invalid',
  'key_mismatch',
  'not_failed_over',
  'health_failed',
  // the recovered system disk would not boot on the target (bootability check); fix the source
  'boot_blocked',
  // failback: the original volume is missing, unwritable or too small; fix it and run again
  'volume_unreadable',
  'volume_resized',
  'volume_in_use',
  'unfence_failed',
  // the agent on the recovered server could not start (no DR_HOME or dr there): fix it, run again
  'way_home_failed',
]);
const PERMANENT_DATA = new Set(['block_corrupt', 'store_corrupt', 'not_implemented']);

/** A failure that ends the operation for good; carries the code for the `finished` event. */
export class FinalError extends UnrecoverableError {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export function cancelled(opId: string): DrError {
  return new DrError(`${opId} was cancelled`, { code: 'operation_cancelled', subject: opId });
}

/** Whether a retry cannot help: the job fails at once. */
export function isPermanent(err: unknown): boolean {
  if (err instanceof UnrecoverableError) return true;
  if (!isDrError(err)) return false;
  return PERMANENT.has(err.code) || PERMANENT_DATA.has(err.code);
}

/** The `error` of a `finished` event: a code and one line. */
export function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof FinalError) return { code: err.code, message: err.message };
  if (isDrError(err)) return { code: err.code, message: err.message };
  return { code: 'internal', message: errorMessage(err) };
}

/**
 * Whether the job's own record is gone from Redis (it restarted without its data, or someone
 * removed the job): BullMQ then fails every update with "Missing key for job". A retry is
 * impossible, since nothing is left to retry.
 */
export function isJobLost(err: unknown): boolean {
  return /Missing key for job/.test(errorMessage(err));
}

export function jobLost(opId: string, what: string): DrError {
  return new DrError(
    `the job record of ${opId} is gone from Redis (it restarted without its data, or the job was removed); ${what}`,
    {
      code: 'operation_unknown',
      subject: opId,
      remedy: 'run Redis with persistence (appendonly yes) so operations survive its restart',
    },
  );
}
