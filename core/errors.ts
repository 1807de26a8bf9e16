/**
 * Every error a user can meet carries a stable code, the subject it is about
 * (a file, a volume, a key name) and, where there is one, the remedy.
 */
export type ErrorCode =
  | 'config_missing'
  | 'config_invalid'
  | 'home_exists'
  | 'home_missing'
  | 'app_unknown'
  | 'app_exists'
  | 'volume_unreadable'
  | 'volume_resized'
  | 'volume_in_use'
  | 'unfence_failed'
  | 'key_invalid'
  | 'key_mismatch'
  | 'tls_invalid'
  | 'gateway_unreachable'
  | 'gateway_refused'
  | 'gateway_full'
  | 'agent_conflict'
  | 'session_lost'
  | 'app_failed_over'
  | 'app_paused'
  | 'not_paused'
  | 'not_failed_over'
  | 'point_unknown'
  | 'point_unverified'
  | 'point_conflict'
  | 'store_corrupt'
  | 'store_unavailable'
  | 'app_elsewhere'
  | 'lease_lost'
  | 'store_replaced'
  | 'block_corrupt'
  | 'reference_refused'
  | 'target_exists'
  | 'bad_request'
  | 'quiesce_failed'
  | 'provider_failed'
  | 'way_home_failed'
  | 'boot_blocked'
  | 'operation_conflict'
  | 'operation_cancelled'
  | 'operation_unknown'
  | 'health_failed'
  | 'redis_unreachable'
  | 'not_implemented'
  | 'already_running'
  | 'port_in_use'
  | 'dependency_missing'
  | 'home_unwritable'
  | 'child_failed'
  | 'plan_invalid'
  | 'plan_unknown'
  | 'usage';

export interface DrErrorOptions {
  code: ErrorCode;
  /** What the error is about: a path, a config key, an app or volume name. */
  subject?: string;
  /** One sentence telling the user how to fix it. */
  remedy?: string;
  cause?: unknown;
}

export class DrError extends Error {
  readonly code: ErrorCode;
  readonly subject: string | undefined;
  readonly remedy: string | undefined;

  constructor(message: string, { code, subject, remedy, cause }: DrErrorOptions) {
    super(remedy ? `${message}. To resolve, ${remedy}` : message, { cause });
    this.name = 'DrError';
    this.code = code;
    this.subject = subject;
    this.remedy = remedy;
  }
}

export function isDrError(err: unknown, code?: ErrorCode): err is DrError {
  return err instanceof DrError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for logs and error lines. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node's system error code (ENOENT, ENOSPC …) of a thrown value, if it has one. */
export function systemCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
