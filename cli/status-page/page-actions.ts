/** The status page's buttons: sign-in by a `dr signin` link, and drill / approve / reject through the engine. */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answer } from '../../bot/answer.js';
import type { Config } from '../../core/config.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { ControlPlane, Reply } from '../../engine/contract.js';
import { resolveIdentity } from '../../engine/identity.js';
import { type AccessRule, checkAccess } from '../web/access-rule.js';
import { pathOf, type Route, sendText } from '../web/route.js';
import {
  formToken,
  newClaim,
  SESSION_MS,
  type SignedClaim,
  signClaim,
  verifyClaim,
} from './signin-key.js';

/** The cookie a signed-in browser keeps. */
export const SESSION_COOKIE = 'lifeboat_session';

/** Who is signed in on this request, and the form token their buttons carry. */
export interface Viewer {
  person: string;
  /** The actor commands go in as: the person's console identity. */
  actor: string;
  groups: string[];
  /** Whether dr.yaml knows the person (unknown people may only read). */
  known: boolean;
  form: string;
}

/** What the page shows about signing in and the last button pressed. */
export interface PageContext {
  viewer?: Viewer;
  /** The answer to the button this browser pressed last. */
  reply?: Reply;
  /** Buttons exist at all (the page runs beside an engine). */
  actionsEnabled: boolean;
}

export interface PageActionsOptions {
  key: Buffer;
  plane: ControlPlane;
  config: () => Pick<Config, 'people' | 'admin'>;
  access: AccessRule;
  log?: Logger;
  now?: () => number;
}

export interface PageActions {
  routes: Route[];
  /** The page's context for this request: who is signed in, and their last answer. */
  context(req: IncomingMessage): PageContext;
}

/** What a button may ask: the verb and its one word, checked before the grammar sees it. */
const BUTTONS = {
  drill: 'app',
  approve: 'id',
  reject: 'id',
} as const;
type ButtonVerb = keyof typeof BUTTONS;
const WORD = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Answers kept for the page after a button's redirect; few, and not for long. */
const REPLY_MS = 5 * 60_000;
const MAX_REPLIES = 200;
const MAX_FORM_BYTES = 2048;

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const c = req.headers.cookie
    ?.split(';')
    .map((x) => x.trim())
    .find((x) => x.startsWith(`${name}=`));
  return c ? decodeURIComponent(c.slice(name.length + 1)) : undefined;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * `GET /signin?ticket=…` (the link `dr signin` prints: once, within 10 minutes) sets an HttpOnly,
 * SameSite=Strict session cookie; `POST /act` sends a button's command to the engine as the
 * signed-in person's console identity, exactly as typing it in `dr chat` would, so policies,
 * approvals and the audit log apply; `POST /signout` forgets the session.
 */
export function pageActions({
  key,
  plane,
  config,
  access,
  log = silentLog,
  now = Date.now,
}: PageActionsOptions): PageActions {
  const usedTickets = new Map<string, number>();
  const replies = new Map<string, { person: string; reply: Reply; at: number }>();
  let seq = 0;

  const guard = (req: IncomingMessage, res: ServerResponse): boolean => {
    const verdict = checkAccess(req, access);
    if (!verdict.ok) sendText(res, verdict.status, verdict.message);
    return verdict.ok;
  };

  const session = (req: IncomingMessage): { claim: SignedClaim; token: string } | undefined => {
    const token = cookieOf(req, SESSION_COOKIE);
    const claim = token ? verifyClaim(key, token, 'session', now()) : undefined;
    return claim && token ? { claim, token } : undefined;
  };

  const viewerOf = (req: IncomingMessage): Viewer | undefined => {
    const s = session(req);
    if (!s) return undefined;
    const actor = `console:${s.claim.person}`;
    const who = resolveIdentity(config(), actor);
    return {
      person: s.claim.person,
      actor,
      groups: who.groups,
      known: who.known,
      form: formToken(key, s.token),
    };
  };

  /**
   * A POST from another site's page carries its Origin (browsers also say Sec-Fetch-Site):
   * refused, whatever cookie it holds. The page's referrer policy (same-origin) lets the browser
   * name the page's own origin.
   */
  const sameOrigin = (req: IncomingMessage): boolean => {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return false;
    const origin = req.headers.origin;
    if (origin === undefined || origin === 'null') return origin === undefined;
    return origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
  };

  const signin: Route = (req, res) => {
    if (pathOf(req) !== '/signin') return false;
    if (req.method !== 'GET') {
      sendText(res, 405, 'use GET /signin?ticket=… (the link dr signin prints)');
      return true;
    }
    if (!guard(req, res)) return true;
    const t = now();
    for (const [nonce, expires] of usedTickets) if (expires <= t) usedTickets.delete(nonce);
    const ticket = new URL(req.url ?? '/', 'http://x').searchParams.get('ticket') ?? '';
    const claim = verifyClaim(key, ticket, 'ticket', t);
    if (!claim || usedTickets.has(claim.nonce)) {
      sendText(
        res,
        401,
        'this sign-in link is not valid, was used already or has expired: run `dr signin` on the Lifeboat host for a new one',
      );
      return true;
    }
    usedTickets.set(claim.nonce, claim.expires);
    const token = signClaim(key, newClaim('session', claim.person, t, SESSION_MS));
    log.info({ person: claim.person }, 'signed in to the status page');
    res.writeHead(303, {
      location: '/',
      'set-cookie': `${SESSION_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}`,
      'cache-control': 'no-store',
    });
    res.end();
    return true;
  };

  const signout: Route = (req, res) => {
    if (pathOf(req) !== '/signout') return false;
    if (req.method !== 'POST') {
      sendText(res, 405, 'use POST /signout (the page’s sign-out button)');
      return true;
    }
    res.writeHead(303, {
      location: '/',
      'set-cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
      'cache-control': 'no-store',
    });
    res.end();
    return true;
  };

  const act: Route = async (req, res) => {
    if (pathOf(req) !== '/act') return false;
    if (req.method !== 'POST') {
      sendText(res, 405, 'use POST /act (the page’s buttons)');
      return true;
    }
    if (!guard(req, res)) return true;
    if (!sameOrigin(req)) {
      sendText(res, 403, 'refused: the button was pressed on a page of another site');
      return true;
    }
    const viewer = viewerOf(req);
    if (!viewer) {
      sendText(
        res,
        401,
        'not signed in (or the session expired): run `dr signin` on the Lifeboat host and open the link it prints',
      );
      return true;
    }
    const form = await readForm(req);
    if (!form || form.get('form') !== viewer.form) {
      sendText(res, 403, 'refused: reload the status page and press the button again');
      return true;
    }
    const verb = form.get('verb') ?? '';
    const word = form.get(BUTTONS[verb as ButtonVerb] ?? '') ?? '';
    if (!(verb in BUTTONS) || !WORD.test(word)) {
      sendText(
        res,
        400,
        `the page has no button "${verb.slice(0, 20)} ${word.slice(0, 40)}": use drill APP, approve ID or reject ID`,
      );
      return true;
    }
    const reply = await answer(
      plane,
      {
        text: `${verb} ${word}`,
        actor: viewer.actor,
        surface: 'console',
        channel: 'console',
        id: `web:${process.pid}:${randomBytes(6).toString('hex')}:${++seq}`,
      },
      { log, now },
    );
    const t = now();
    for (const [id, r] of replies) if (t - r.at > REPLY_MS) replies.delete(id);
    while (replies.size >= MAX_REPLIES) replies.delete(replies.keys().next().value as string);
    const id = randomBytes(9).toString('base64url');
    replies.set(id, { person: viewer.person, reply, at: t });
    res.writeHead(303, { location: `/?reply=${id}`, 'cache-control': 'no-store' });
    res.end();
    return true;
  };

  return {
    routes: [signin, signout, act],
    context(req) {
      const viewer = viewerOf(req);
      const id = new URL(req.url ?? '/', 'http://x').searchParams.get('reply');
      const kept = id ? replies.get(id) : undefined;
      const reply =
        kept && viewer && kept.person === viewer.person && now() - kept.at <= REPLY_MS
          ? kept.reply
          : undefined;
      return { actionsEnabled: true, ...(viewer ? { viewer } : {}), ...(reply ? { reply } : {}) };
    },
  };
}
