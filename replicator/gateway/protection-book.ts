/**
 * Each app's protection state (protected, paused, failed over), persisted beside the store: after
 * a failover the DR copy is production, and its agent must not write into it any more.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import {
  type ProtectionRequest,
  type ProtectionState,
  protectionRequestSchema,
} from '../transport/protocol.js';
import type { GatewayStore } from './gateway-store.js';
import { heldApp } from './held-app.js';
import { parseRequest } from './request-body.js';

export interface ProtectionBook {
  /** The app's state, read from its file the first time (protected when there is none). */
  of(app: string): Promise<ProtectionState>;
  /** The state as last read or set, without reading (for status); undefined when never read. */
  cached(app: string): ProtectionState | undefined;
  /** Refuses the agent's calls while the app is failed over or paused, naming why and the way on. */
  refuseUnlessProtected(app: string, opts?: { whilePaused?: boolean }): Promise<void>;
  /** Applies a POST /protection body: pause, resume (`from: paused`), fail over or protect. */
  set(app: string, body: unknown): Promise<ProtectionState>;
}

export function createProtectionBook({
  store,
  log,
  now,
  onFailedOver,
}: {
  store: GatewayStore;
  log: Logger;
  now: () => number;
  /** Called when an app is failed over: its agent's lease ends, so its next call hears why. */
  onFailedOver: (app: string) => void;
}): ProtectionBook {
  const fileOf = (app: string) => join(store.dir, 'apps', app, 'protection.json');
  const states = new Map<string, ProtectionState>();

  const of = async (app: string): Promise<ProtectionState> => {
    let p = states.get(app);
    if (!p) {
      try {
        p = JSON.parse(await readFile(fileOf(app), 'utf8')) as ProtectionState;
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
        p = { state: 'protected' };
      }
      if (store.app(app)) states.set(app, p); // names of apps not held are not remembered
    }
    return p;
  };

  const failedOverRefusal = (app: string, p: ProtectionState, what: string) =>
    new DrError(
      `cannot ${what} app ${app}: it was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}) and its DR copy is production now`,
      {
        code: 'app_failed_over',
        subject: app,
        remedy: `fail back with \`dr failback ${app}\` to protect the original site again`,
      },
    );

  return {
    of,
    cached: (app) => states.get(app),
    async refuseUnlessProtected(app, { whilePaused = false } = {}) {
      const p = await of(app);
      if (p.state === 'paused' && !whilePaused) {
        throw new DrError(
          `replication of app ${app} is paused (by ${p.by ?? '?'} since ${p.since ?? '?'})`,
          {
            code: 'app_paused',
            subject: app,
            remedy: `resume it with \`dr resume ${app}\` or \`resume ${app}\` in chat; a running agent waits and goes on by itself`,
          },
        );
      }
      if (p.state !== 'failed-over') return;
      throw new DrError(
        `app ${app} was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}): its DR copy is production now, so replication into it is refused`,
        {
          code: 'app_failed_over',
          subject: app,
          remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
        },
      );
    },
    async set(app, body) {
      const req: ProtectionRequest = parseRequest(
        protectionRequestSchema,
        body,
        'protection change',
        'send {"state":"paused","by":"NAME"} or {"state":"protected","from":"paused"}',
      );
      heldApp(store, app); // only an app the gateway holds a replica of has a protection state
      const cur = await of(app);
      let next: ProtectionState;
      if (req.state === 'paused') {
        if (cur.state === 'failed-over') throw failedOverRefusal(app, cur, 'pause');
        if (cur.state === 'paused') return { ...cur, unchanged: true };
        next = { state: 'paused', by: (req.by ?? '').trim(), since: new Date(now()).toISOString() };
      } else if (req.state === 'protected' && req.from === 'paused') {
        if (cur.state === 'failed-over') throw failedOverRefusal(app, cur, 'resume');
        if (cur.state !== 'paused')
          throw new DrError(`replication of app ${app} is not paused`, {
            code: 'not_paused',
            subject: app,
            remedy: `nothing to resume; pause it first with \`dr pause ${app}\``,
          });
        next = { state: 'protected' };
      } else
        next =
          req.state === 'failed-over'
            ? {
                state: 'failed-over',
                ...(req.opId ? { opId: req.opId } : {}),
                since: new Date(now()).toISOString(),
              }
            : { state: 'protected' };
      await mkdir(dirname(fileOf(app)), { recursive: true });
      await writeFileAtomic(fileOf(app), JSON.stringify(next));
      states.set(app, next);
      if (next.state === 'failed-over') onFailedOver(app);
      log.warn({ app, ...next }, 'protection state changed');
      return next;
    },
  };
}
