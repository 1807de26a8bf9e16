/** The HTTP status of every error the gateway answers with: one table by error code. */
import { DrError, type ErrorCode, isDrError } from '../../core/errors.js';

/** Codes the table does not name answer 422 (a DrError: understood, refused) or 500 (a bug). */
const statusByCode: Partial<Record<ErrorCode, number>> = {
  bad_request: 400,
  app_unknown: 404,
  point_unknown: 404,
  agent_conflict: 409,
  session_lost: 409,
  lease_lost: 409,
  app_paused: 409,
  app_failed_over: 409,
  not_paused: 409,
  point_conflict: 409,
  store_corrupt: 500,
  store_unavailable: 503,
  redis_unreachable: 503,
  gateway_full: 507,
};

/** A refusal whose status is not its code's: an unknown path or volume is a 404 `bad_request`. */
export class HttpError extends DrError {
  constructor(
    readonly status: number,
    err: DrError,
  ) {
    super(err.message, {
      code: err.code,
      ...(err.subject !== undefined ? { subject: err.subject } : {}),
      cause: err.cause,
    });
    Object.defineProperty(this, 'remedy', { value: err.remedy });
  }
}

export function httpStatusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (!isDrError(err)) return 500;
  return statusByCode[err.code] ?? 422;
}
