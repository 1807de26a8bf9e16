/** `dr signin`: a one-time link that signs a browser in to the status page's buttons as you. */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { DrError } from '../../core/errors.js';
import { readUpState } from '../../core/up-state.js';
import { consoleIdentity } from '../console-identity.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import {
  loadSigninKey,
  newClaim,
  SESSION_MS,
  signClaim,
  TICKET_MS,
} from '../status-page/signin-key.js';

export function registerSignin(program: Command, exit: ExitState): void {
  program
    .command('signin')
    .description(
      "print a link that signs a browser in to the status page's buttons (drill, approve, reject) as you",
    )
    .option(
      '--as <person>',
      'sign in as console:<person>: only where dr chat --as is allowed (the demo home, or console.allowAs)',
    )
    .option(
      '--url <url>',
      'the status page (default: where this home’s dr up serves it, else http://127.0.0.1:8787)',
    )
    .option('--json', 'print the link and who it signs in as as JSON')
    .addHelpText(
      'after',
      `
The link works once, within ${TICKET_MS / 60_000} minutes; the browser then stays signed in for ${SESSION_MS / 3_600_000} hours.
Its buttons act as your console identity (console:<you>), through the same policies and approvals as
dr chat. Anyone who holds the link before it is used can sign in with it: send it to nobody.`,
    )
    .action(async (opts: { as?: string; url?: string; json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const { person, note } = consoleIdentity({
          config,
          home: ctx.home,
          login: login(),
          ...(opts.as !== undefined ? { as: opts.as } : {}),
        });
        const base = pageUrl(opts.url ?? defaultUrl(ctx.home));
        const key = await loadSigninKey(ctx.home);
        const ticket = signClaim(key, newClaim('ticket', person, Date.now(), TICKET_MS));
        const link = `${base}/signin?ticket=${ticket}`;
        const known = Object.entries(config.people).some(([, p]) =>
          p.ids.includes(`console:${person}`),
        );
        if (opts.json) {
          printJson({ link, person, actor: `console:${person}`, known });
          return 0;
        }
        if (note) ctx.out(`dr signin: ${note}`);
        ctx.out(`Open this link within ${TICKET_MS / 60_000} minutes (it works once):`);
        ctx.out(`  ${link}`);
        ctx.out(
          known
            ? `The page's buttons then act as console:${person}, as dr chat would.`
            : `console:${person} is not under people: in dr.yaml: the page will only read. Add it to a person's ids to act.`,
        );
        return 0;
      }),
    );
}

function login(): string {
  try {
    return userInfo().username;
  } catch (err) {
    throw new DrError(
      `cannot tell who runs dr signin: uid ${process.getuid?.()} has no user entry`,
      {
        code: 'usage',
        subject: 'dr signin',
        remedy: 'run it as a user listed in /etc/passwd',
        cause: err,
      },
    );
  }
}

function defaultUrl(home: string): string {
  const listen = readUpState(home)?.listen;
  return listen ? `http://${listen}` : 'http://127.0.0.1:8787';
}

/** The page's base URL without a trailing slash; a usage error when it is not http(s). */
function pageUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    u = new URL('invalid:'); // reported just below, with the value
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new DrError(`--url ${JSON.stringify(raw)} is not an http(s) address`, {
      code: 'usage',
      subject: '--url',
      remedy: 'give the status page like http://127.0.0.1:8787 (what dr up or dr serve prints)',
    });
  }
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}
