/** The app's protection state as the agent meets it: the refusal it means, and the one wait while it lasts. */
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { ProtectionState } from '../transport/wire-types.js';
import type { AgentStatus } from './agent-status.js';

/** The refusal a batch or commit of `app` meets in this state; undefined while it is protected. */
export function protectionRefusal(app: string, p: ProtectionState): DrError | undefined {
  if (p.state === 'paused')
    return new DrError(
      `replication of app ${app} is paused (by ${p.by ?? '?'} since ${p.since ?? '?'})`,
      {
        code: 'app_paused',
        subject: app,
        remedy: `resume it with \`dr resume ${app}\` or \`resume ${app}\` in chat`,
      },
    );
  if (p.state === 'failed-over')
    return new DrError(
      `app ${app} was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}): its DR copy is production now, so replication into it is refused`,
      {
        code: 'app_failed_over',
        subject: app,
        remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
      },
    );
  return undefined;
}

export interface ProtectionWaitOptions {
  client: Pick<GatewayClient, 'protection'>;
  app: string;
  /** How often to ask the gateway. */
  everyMs: number;
  log: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Asks the gateway every `everyMs` until the app is no longer in state `leave` (paused, or failed
 * over) and returns the state it is in now; an unreadable state is asked again, quietly. Returns
 * undefined at once when `signal` aborts.
 */
export async function waitForProtection(
  leave: 'paused' | 'failed-over',
  { client, app, everyMs, log, signal }: ProtectionWaitOptions,
): Promise<ProtectionState | undefined> {
  while (!signal?.aborted) {
    await sleep(everyMs, undefined, signal ? { signal } : undefined).catch(() => undefined); // aborted: ends below
    if (signal?.aborted) return undefined;
    let state: ProtectionState;
    try {
      state = await client.protection(app);
    } catch (err) {
      log.debug({ err: errorMessage(err) }, 'protection state not readable; asking again');
      continue;
    }
    if (state.state !== leave) return state;
  }
  return undefined;
}

/**
 * The app is failed over: the agent has released its session, volumes, trace instances and
 * locks (failback must find nothing holding the originals) and says so once, then asks the
 * gateway every few seconds, quietly, until a failback protects the app again. The agent then
 * starts afresh from its kept MAC state: the scan finds exactly what failback wrote (reprotect
 * without a full resync). Returns at once when `signal` aborts.
 */
export async function standBy(err: DrError, o: ProtectionWaitOptions): Promise<void> {
  o.log.warn(
    { err: err.message },
    `replication of ${o.app} stopped: it was failed over; standing by until \`dr failback ${o.app}\` protects it again`,
  );
  const state = await waitForProtection('failed-over', o);
  if (state)
    o.log.warn(`${o.app} is protected again; replication resumes from the written-back state`);
}

/**
 * Waits until the app is no longer paused, its phase `paused` meanwhile (said by a heartbeat at
 * once); returns at once when `signal` aborts. A failover meanwhile is thrown, to end the agent
 * like any failover.
 */
export async function waitWhilePaused(
  err: DrError,
  o: ProtectionWaitOptions & { status: AgentStatus; heartbeat: () => void },
): Promise<void> {
  const { app, status, log } = o;
  const before = status.phase;
  status.phase = 'paused';
  status.lastError = undefined;
  log.warn({ err: err.message }, 'replication paused; waiting for the resume');
  o.heartbeat(); // status shows the agent waiting
  try {
    const state = await waitForProtection('paused', o);
    if (state?.state === 'failed-over') {
      throw new DrError(
        `app ${app} was failed over while its replication was paused (operation ${state.opId ?? '?'})`,
        {
          code: 'app_failed_over',
          subject: app,
          remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
        },
      );
    }
    if (state) log.info('replication resumed; resyncing what changed meanwhile');
  } finally {
    status.phase = before === 'paused' ? 'continuous' : before;
  }
}
