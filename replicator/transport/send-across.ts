/**
 * One request across several gateways: the first that can be reached answers, and a redirect
 * (307 naming the gateway that holds the app) is followed a few hops at most; a redirect that
 * comes back is refused as a loop, naming the chain.
 */
import { DrError, isDrError } from '../../core/errors.js';

/** A refusal that names where to go instead (set by the client on a 307). */
export type Redirected = Error & { redirect?: string };

/**
 * How often a request is tried again while the gateway holding its app cannot be reached but
 * another answered: the dead holder's lease lapses within seconds and the next try after that
 * is the takeover, so the retry does not back off (a doubled pause would add up to its length).
 */
export const TAKEOVER_RETRY_MS = 500;

/** Whether `err` says the app's holder is gone while other gateways answer (a takeover is due). */
export function awaitsTakeover(err: unknown): boolean {
  return (err as { awaitsTakeover?: unknown } | undefined)?.awaitsTakeover === true;
}

/** HOST:PORT of a redirect's `Location: https://HOST:PORT/…`, or undefined when it names none. */
export function redirectTarget(location: string | undefined): string | undefined {
  if (!location) return undefined;
  try {
    const u = new URL(location);
    return u.protocol === 'https:' && u.port ? `${u.hostname}:${u.port}` : undefined;
  } catch {
    return undefined; // not a URL: treated as the refusal it also is
  }
}

/**
 * Sends through `send` to each address in turn: on to the next when one cannot be reached
 * (gateway_unreachable), to the named holder first on a redirect. Any other refusal is final.
 */
export async function sendAcross<T>(
  addresses: readonly string[],
  what: string,
  send: (address: string) => Promise<T>,
): Promise<{ res: T; address: string }> {
  const queue = [...addresses];
  const tried = new Set<string>();
  const redirected = new Map<string, string>();
  let lastError: unknown;
  for (let hops = 0; queue.length > 0 && hops < addresses.length + 4; hops++) {
    const to = queue.shift() as string;
    if (tried.has(to)) continue;
    tried.add(to);
    try {
      return { res: await send(to), address: to };
    } catch (err) {
      const holder = (err as Redirected).redirect;
      if (holder === undefined) {
        if (!isDrError(err, 'gateway_unreachable')) throw err;
        lastError = err;
        continue;
      }
      redirected.set(to, holder);
      if (redirected.has(holder) || holder === to) {
        const chain = [...redirected].map(([a, b]) => `${a} -> ${b}`).join(', ');
        throw new DrError(`gateways redirect ${what} in a loop (${chain})`, {
          code: 'gateway_refused',
          subject: to,
          remedy:
            'give each gateway its own address (dr gateway --advertise HOST:PORT) and one Redis for all of them',
        });
      }
      // A holder that cannot be reached is tried once; its lease lapses and another takes over.
      if (!tried.has(holder)) queue.unshift(holder);
      lastError = err;
    }
  }
  if (isDrError(lastError, 'gateway_unreachable')) throw lastError;
  const holder = (lastError as Redirected | undefined)?.redirect;
  const pending = new DrError(
    `no gateway could serve ${what}: the gateways redirect to ${holder}, which cannot be reached (tried ${[...tried].join(', ')})`,
    {
      code: 'gateway_unreachable',
      subject: holder ?? [...tried].join(','),
      remedy: "wait: a dead gateway's apps are taken over by another within seconds",
      cause: lastError,
    },
  );
  throw Object.assign(pending, { awaitsTakeover: true });
}
