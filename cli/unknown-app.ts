/** The one error for an app name this home does not know, with the nearest name when it looks like a typo. */

import { DrError, isDrError } from '../core/errors.js';
import { closest } from '../engine/closest.js';
import type { AppStatus } from '../replicator/transport/wire-types.js';

/**
 * `app` is in neither dr.yaml nor the gateway's replicas (`known` holds both), nor, where a plan
 * may go (`dr status`), among the home's `plans`. Nothing is created for it: a typo must not
 * become an app that every later `dr status` lists.
 */
export function unknownAppError(
  app: string,
  known: readonly string[],
  plans: readonly string[] = [],
): DrError {
  const names = [...new Set(known)].sort();
  const near = closest(app, [...names, ...plans]);
  const planList = plans.length > 0 ? `; plans: ${plans.join(', ')} (\`dr plan lint\`)` : '';
  const remedy = near
    ? `did you mean ${near}? Known apps: ${names.join(', ')} (\`dr app list\`)${planList}`
    : names.length > 0
      ? `use one of: ${names.join(', ')} (\`dr app list\`)${planList}, or add it with \`dr app add ${app} --volume NAME=PATH\``
      : `add it first with \`dr app add ${app} --volume NAME=PATH\`${planList.replace('; plans:', ', or name a plan:')}`;
  return new DrError(`no app ${plans.length > 0 ? 'or plan ' : ''}named ${JSON.stringify(app)}`, {
    code: 'app_unknown',
    subject: app,
    remedy,
  });
}

/**
 * Runs `body`; when it fails because the gateway has no replica of `app` and dr.yaml has no such
 * app either, the error becomes `unknownAppError` (the gateway's own remedy, "start its agent",
 * cannot work for a name nothing defines).
 */
export async function forKnownApp<T>(
  app: string,
  configured: readonly string[],
  gateway: { status(app?: string): Promise<AppStatus[]> },
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (!isDrError(err, 'app_unknown') || configured.includes(app)) throw err;
    // Listing the replicas is only for the suggestion: without it the error still names the app.
    const replicas = await gateway.status().catch(() => [] as AppStatus[]);
    throw unknownAppError(app, [
      ...configured,
      ...replicas.filter((s) => s.points > 0).map((s) => s.app),
    ]);
  }
}
