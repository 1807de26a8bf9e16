/** The one wait on the app's protection state: paused until resumed, failed over until failed back. */
import { describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { AgentStatus } from '../../../../replicator/agent/agent-status.js';
import {
  protectionRefusal,
  standBy,
  waitForProtection,
  waitWhilePaused,
} from '../../../../replicator/agent/protection-wait.js';
import type { ProtectionState } from '../../../../replicator/transport/wire-types.js';
import { recordingLog } from './agent-fixture.js';

/** A gateway answering these states in turn (an Error is thrown as an unreachable gateway). */
function answering(states: Array<ProtectionState | Error>) {
  let asked = 0;
  return {
    get asked() {
      return asked;
    },
    protection: async (_app: string): Promise<ProtectionState> => {
      const s = states[Math.min(asked++, states.length - 1)];
      if (s instanceof Error) throw s;
      return s as ProtectionState;
    },
  };
}

const opts = (client: ReturnType<typeof answering>, signal?: AbortSignal) => ({
  client,
  app: 'web',
  everyMs: 1,
  log: silentLog,
  signal,
});

describe('protectionRefusal', () => {
  it('names who paused the app and how to resume it', () => {
    const err = protectionRefusal('web', {
      state: 'paused',
      by: 'alice',
      since: '2026-12-07T04:00:00.000Z',
    });
    expect(err?.code).toBe('app_paused');
    expect(err?.message).toBe(
      'replication of app web is paused (by alice since 2026-12-07T04:00:00.000Z). To resolve, resume it with `dr resume web` or `resume web` in chat',
    );
  });

  it('names the failover operation and the way back', () => {
    const err = protectionRefusal('web', { state: 'failed-over', opId: 'op-7', since: 'then' });
    expect(err?.code).toBe('app_failed_over');
    expect(err?.message).toMatch(/operation op-7 at then/);
    expect(err?.remedy).toMatch(/dr failback web/);
  });

  it('refuses nothing while the app is protected', () => {
    expect(protectionRefusal('web', { state: 'protected' })).toBeUndefined();
  });
});

describe('waitForProtection', () => {
  it('waits through pauses and unreadable answers until the app is resumed', async () => {
    const gw = answering([
      { state: 'paused' },
      new Error('connect ECONNREFUSED'),
      { state: 'paused' },
      { state: 'protected' },
    ]);
    const state = await waitForProtection('paused', opts(gw));
    expect(state?.state).toBe('protected');
    expect(gw.asked).toBe(4);
  });

  it('returns a failover that happened while paused, for the caller to stop on', async () => {
    const gw = answering([{ state: 'paused' }, { state: 'failed-over', opId: 'op-1' }]);
    const state = await waitForProtection('paused', opts(gw));
    expect(state).toEqual({ state: 'failed-over', opId: 'op-1' });
  });

  it('stands by through a failover until a failback protects the app again', async () => {
    const gw = answering([
      { state: 'failed-over' },
      { state: 'failed-over' },
      new Error('gateway down'),
      { state: 'protected' },
    ]);
    const state = await waitForProtection('failed-over', opts(gw));
    expect(state?.state).toBe('protected');
    expect(gw.asked).toBe(4);
  });

  it('returns undefined at once when stopped, asking no more', async () => {
    const gw = answering([{ state: 'paused' }]);
    const stop = new AbortController();
    const waiting = waitForProtection('paused', { ...opts(gw, stop.signal), everyMs: 3_600_000 });
    stop.abort();
    expect(await waiting).toBeUndefined();
    expect(gw.asked).toBe(0);
  });

  it('does not ask when already stopped', async () => {
    const gw = answering([{ state: 'protected' }]);
    expect(await waitForProtection('paused', opts(gw, AbortSignal.abort()))).toBeUndefined();
    expect(gw.asked).toBe(0);
  });
});

describe('waitWhilePaused', () => {
  const paused = new DrError('paused', { code: 'app_paused' });

  it('shows the agent paused while it waits, says so at once, and goes back to its phase', async () => {
    const gw = answering([{ state: 'paused' }, { state: 'protected' }]);
    const status = new AgentStatus();
    status.phase = 'continuous';
    status.lastError = 'replication of app web is paused';
    const phases: string[] = [];
    await waitWhilePaused(paused, {
      ...opts(gw),
      status,
      heartbeat: () => phases.push(status.phase),
    });
    expect(phases).toEqual(['paused']);
    expect(status.phase).toBe('continuous');
    expect(status.lastError).toBeUndefined();
  });

  it('ends the wait with a failover that happened meanwhile, naming the operation', async () => {
    const gw = answering([{ state: 'failed-over', opId: 'op-9' }]);
    const status = new AgentStatus();
    const err = await waitWhilePaused(paused, { ...opts(gw), status, heartbeat: () => {} }).then(
      () => undefined,
      (e: unknown) => e as DrError,
    );
    expect(err?.code).toBe('app_failed_over');
    expect(err?.message).toMatch(
      /^app web was failed over while its replication was paused \(operation op-9\)/,
    );
    expect(status.phase).toBe('initial-sync');
  });
});

describe('standBy', () => {
  it('says once that it stands by, and again when the app is protected again', async () => {
    const gw = answering([
      { state: 'failed-over' },
      { state: 'failed-over' },
      { state: 'protected' },
    ]);
    const { log, warnings } = recordingLog();
    await standBy(new DrError('failed over', { code: 'app_failed_over' }), { ...opts(gw), log });
    expect(warnings).toEqual([
      'replication of web stopped: it was failed over; standing by until `dr failback web` protects it again',
      'web is protected again; replication resumes from the written-back state',
    ]);
  });
});
