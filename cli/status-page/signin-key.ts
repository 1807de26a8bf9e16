/** Signed sign-in tickets and sessions for the status page's buttons, keyed by a secret in the home. */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';

/** The key file in the home: 32 random bytes, hex, readable by its owner only. */
export const SIGNIN_KEY_FILE = 'status-signin.key';

/** A sign-in link is good for this long after `dr signin` prints it, and once only. */
export const TICKET_MS = 10 * 60_000;
/** A browser stays signed in for this long. */
export const SESSION_MS = 12 * 3_600_000;

export type TokenKind = 'ticket' | 'session';

export interface SignedClaim {
  kind: TokenKind;
  /** The person's name: the page acts as `console:<person>`. */
  person: string;
  /** ms since epoch. */
  expires: number;
  /** Random, so that a ticket is used once and a session's form token is its own. */
  nonce: string;
}

/** Reads the home's sign-in key, making it (mode 0600) the first time. */
export async function loadSigninKey(home: string): Promise<Buffer> {
  const path = join(home, SIGNIN_KEY_FILE);
  try {
    const hex = (await readFile(path, 'utf8')).trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) {
      throw new DrError(`${path} is not a sign-in key (64 hex digits)`, {
        code: 'config_invalid',
        subject: path,
        remedy:
          'delete it: the next dr serve or dr signin makes a new one (links given out stop working)',
      });
    }
    return Buffer.from(hex, 'hex');
  } catch (err) {
    if (systemCode(err) !== 'ENOENT') throw err;
  }
  await writeFileAtomic(path, `${randomBytes(32).toString('hex')}\n`, 0o600);
  // Two processes may have made it at once: whichever rename came last is the key; read it back.
  return loadSigninKey(home);
}

const mac = (key: Buffer, body: string) =>
  createHmac('sha256', key).update(body).digest('base64url');

/** `<claim as base64url JSON>.<HMAC>`. */
export function signClaim(key: Buffer, claim: SignedClaim): string {
  const body = Buffer.from(JSON.stringify(claim)).toString('base64url');
  return `${body}.${mac(key, body)}`;
}

/** The claim of a token this key signed, of this kind and not expired; undefined otherwise. */
export function verifyClaim(
  key: Buffer,
  token: string,
  kind: TokenKind,
  now: number,
): SignedClaim | undefined {
  const [body, sig, extra] = token.split('.');
  if (!body || !sig || extra !== undefined || token.length > 600) return undefined;
  const want = Buffer.from(mac(key, body));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
  try {
    const c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as SignedClaim;
    if (c.kind !== kind || typeof c.person !== 'string' || typeof c.nonce !== 'string')
      return undefined;
    if (!(typeof c.expires === 'number' && c.expires > now)) return undefined;
    return c;
  } catch {
    return undefined; // signed by us yet not JSON cannot happen; treated as no token
  }
}

/** A new claim of `kind` for `person`, valid `ms` from `now`. */
export function newClaim(kind: TokenKind, person: string, now: number, ms: number): SignedClaim {
  return { kind, person, expires: now + ms, nonce: randomBytes(12).toString('base64url') };
}

/** The form token that goes with a session: only a page rendered for that session has it. */
export function formToken(key: Buffer, session: string): string {
  return mac(key, `form:${session}`);
}
