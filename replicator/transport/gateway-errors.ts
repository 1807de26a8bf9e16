/** What a failed call to the gateway becomes: a DrError that names the gateway and the remedy. */
import { DrError, type ErrorCode, systemCode } from '../../core/errors.js';
import { errorBodySchema } from './protocol.js';

const TLS_CODES = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
]);

/** The error for a non-2xx answer from the gateway at `address`, from its JSON error body. */
export function gatewayHttpError(status: number, raw: Buffer, address: string): DrError {
  let code: ErrorCode =
    status === 507 ? 'gateway_full' : status === 409 ? 'agent_conflict' : 'gateway_refused';
  let message = `gateway answered ${status}`;
  let remedy: string | undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    // Not JSON (a proxy's page, say): the status line is all we can report.
  }
  const parsed = errorBodySchema.safeParse(json);
  if (parsed.success) {
    const e = parsed.data.error;
    if (e.code) code = e.code as ErrorCode;
    if (e.message) message = e.message;
    remedy = e.remedy;
  }
  return Object.assign(new DrError(message, { code, subject: address }), { status, remedy });
}

/** The error for a connection to `address` that failed (TLS refused, nothing listening, timed out). */
export function gatewayNetError(err: unknown, address: string): DrError {
  const code = systemCode(err) ?? '';
  if (TLS_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
    return new DrError(`TLS with the gateway at ${address} failed (${code})`, {
      code: 'tls_invalid',
      subject: address,
      remedy: 'use the certificates `dr init` created for this home (tls/), on both sides',
      cause: err,
    });
  }
  return new DrError(`cannot reach the gateway at ${address} (${code || (err as Error).message})`, {
    code: 'gateway_unreachable',
    subject: address,
    remedy: 'start it with `dr gateway`, or check gateway.address in dr.yaml (or DR_GATEWAY)',
    cause: err,
  });
}

/** Whether an error is worth retrying later (link, gateway down or full) rather than a refusal. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof DrError)) return true;
  return (
    err.code === 'gateway_unreachable' ||
    err.code === 'gateway_full' ||
    (err as { status?: number }).status === 503
  );
}
