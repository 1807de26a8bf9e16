import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type EnvName, readEnv } from '../../core/env.js';
import { DrError } from '../../core/errors.js';

/**
 * Who may read the status page and the metrics. From loopback anyone on this machine may (as
 * with `dr status`); from anywhere else only a request bearing the token set in DR_STATUS_TOKEN,
 * and nobody at all when no token is set. The token is never logged or echoed.
 */
export interface AccessRule {
  /** The shared secret remote readers present; absent, only loopback is served. */
  token?: string;
}

export const STATUS_TOKEN_VARIABLE = 'DR_STATUS_TOKEN' satisfies EnvName;

/** The cookie a browser keeps after opening `/?token=…` once. */
export const TOKEN_COOKIE = 'lifeboat_status';

/** Reads the rule from the environment; a token too short to resist guessing is refused. */
export function accessRuleFrom(env: NodeJS.ProcessEnv = process.env): AccessRule {
  const token = readEnv(STATUS_TOKEN_VARIABLE, env);
  return token === undefined ? {} : { token };
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, '');
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** True for a listen host that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || isLoopback(h);
}

/**
 * Refuses a listener beyond loopback without a token: nothing there would keep strangers out of
 * the status page and `/metrics` (and remote readers would only ever get 403).
 */
export function requireTokenBeyondLoopback(
  listen: string,
  host: string,
  access: AccessRule,
  what = '--listen',
): void {
  if (isLoopbackHost(host) || access.token) return;
  throw new DrError(
    `${what} ${listen} is reachable beyond this machine and ${STATUS_TOKEN_VARIABLE} is not set`,
    {
      code: 'usage',
      subject: what,
      remedy: `set ${STATUS_TOKEN_VARIABLE} to a long random value (\`openssl rand -hex 24\`) so remote readers must present it, or listen on 127.0.0.1 behind a TLS proxy on this machine`,
    },
  );
}

export type AccessVerdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

/** Decides one request: loopback peers pass; others need the token (header, cookie or query). */
export function checkAccess(req: IncomingMessage, rule: AccessRule): AccessVerdict {
  if (isLoopback(req.socket.remoteAddress)) return { ok: true };
  if (!rule.token) {
    return {
      ok: false,
      status: 403,
      message: `only served to this machine: set ${STATUS_TOKEN_VARIABLE} on the server to let others in with that token`,
    };
  }
  const presented = presentedToken(req);
  if (presented !== undefined && sameSecret(presented, rule.token)) return { ok: true };
  return {
    ok: false,
    status: 401,
    message: `a valid token is needed: send "Authorization: Bearer <${STATUS_TOKEN_VARIABLE}>" or open /?token=<${STATUS_TOKEN_VARIABLE}> once`,
  };
}

function presentedToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const cookie = req.headers.cookie
    ?.split(';')
    .map((c) => c.trim())
    .find((c) => c.startsWith(`${TOKEN_COOKIE}=`));
  if (cookie) return decodeURIComponent(cookie.slice(TOKEN_COOKIE.length + 1));
  const q = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
  return q ?? undefined;
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}
