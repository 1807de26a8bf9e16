/** The agent's session with the gateway: opening it, the calls that reopen it, heartbeats, the clock offset. */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { createWrappedVolumeKey } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { HeartbeatRequest, SessionRequest, SessionResponse } from '../transport/wire-types.js';
import type { AgentLock } from './agent-lock.js';
import { withRetry } from './retry.js';

/** What a heartbeat says beside the session, its time and the clock offset. */
export type HeartbeatStatus = Omit<HeartbeatRequest, 'sessionId' | 'sentAt' | 'clockOffsetMs'>;

export interface GatewaySessionOptions {
  app: string;
  client: Pick<GatewayClient, 'openSession' | 'closeSession' | 'heartbeat'>;
  kek: KeyEncryptionKey;
  blockSize: number;
  /** This machine's agent lock: names dead predecessors to take over, records our session. */
  lock: Pick<AgentLock, 'previousSession' | 'deadPids' | 'recordSession'>;
  log: Logger;
  now: () => number;
  /**
   * Told of the new session before it replaces the old one (after a gateway restart): may refuse
   * it by throwing (its chain of points does not follow ours).
   */
  onReopen?: (next: SessionResponse) => Promise<void>;
  /** Each transient failure of a call, for status. */
  onTransient?: (err: unknown) => void;
  /** Each heartbeat's answer (beyond the clock, which the session reads itself). */
  onHeartbeatAnswer?: (answer: HeartbeatAnswer) => void;
}

/** What the gateway answers a heartbeat. */
export type HeartbeatAnswer = Awaited<ReturnType<GatewayClient['heartbeat']>>;

/** How long closing the session may take before the lease is left to lapse by itself. */
const CLOSE_WAIT_MS = 3000;

/**
 * One agent's session. The request that opens it (agent, host, volumes with their wrapped keys) is
 * built once and sent again as is when a restarted gateway must be told again. The gateway's
 * clock minus ours is measured at the open and refined from each heartbeat (NTP-style: the
 * gateway answered halfway through the round trip).
 */
export class GatewaySession {
  private session: SessionResponse | undefined;
  /** The one reopening in progress, shared by the calls that found the session lost. */
  private reopening: Promise<void> | undefined;
  private request: SessionRequest | undefined;
  /**
   * A reopening (begun by a heartbeat) found the store replaced: every later call fails with it,
   * so the agent starts again against the new store before it sends anything more.
   */
  private replaced: DrError | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Gateway clock minus ours, in ms. */
  clockOffsetMs = 0;

  constructor(private readonly o: GatewaySessionOptions) {}

  /** The open session; undefined before `open` and after `close`. */
  get current(): SessionResponse | undefined {
    return this.session;
  }

  /** Opens the session for these volumes, retrying while the gateway is unreachable. */
  async open(
    volumes: ReadonlyArray<{ name: string; size: number }>,
    signal?: AbortSignal,
  ): Promise<SessionResponse> {
    const { app, client, kek, blockSize, lock, log, now } = this.o;
    const request: SessionRequest = {
      agentId: `${hostname()}:${process.pid}`,
      host: hostname(),
      pid: process.pid,
      volumes: volumes.map((v) => ({
        name: v.name,
        size: v.size,
        blockSize,
        wrappedKey: createWrappedVolumeKey(kek, app, v.name).toString('base64'),
      })),
    };
    this.request = request;
    let askedAt = now();
    const session = await withRetry(
      () => {
        askedAt = now();
        return client.openSession(app, {
          ...request,
          ...(lock.previousSession ? { replaces: lock.previousSession } : {}),
          ...(lock.deadPids.length ? { replacesPids: lock.deadPids } : {}),
        });
      },
      { what: 'open session', log, signal },
    );
    // The first clock offset, before any point is cut; heartbeats refine it.
    this.clockOffsetMs = Math.round(session.serverTime - (askedAt + now()) / 2);
    this.session = session;
    await lock.recordSession(session.sessionId);
    return session;
  }

  /**
   * Calls the gateway with the current session, retrying transient failures.
   * A gateway that restarted has forgotten the session: open a new one
   * (taking over our own) and go on; the batches it made durable stay.
   */
  call<T>(what: string, op: (sessionId: string) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (!this.session) return Promise.reject(new Error('agent not started'));
    return withRetry(
      async () => {
        if (this.replaced) throw this.replaced;
        const session = this.session;
        // Closed while this call waited to retry: the agent is stopping, nothing to retry for.
        if (!session)
          throw new DrError(`${what} abandoned: the agent stopped`, {
            code: 'operation_cancelled',
          });
        try {
          return await op(session.sessionId);
        } catch (err) {
          const lost = isDrError(err, 'session_lost');
          if (!lost && !isDrError(err, 'agent_conflict')) throw err;
          // With several calls in flight, one may be reopening the session while others are
          // answered "session lost" or, once the new session exists, "another agent" (which
          // is this agent's new session): wait for that one reopening and go on with it.
          if (this.reopening) await this.reopening;
          if (this.replaced) throw this.replaced;
          if (this.session && this.session !== session) return op(this.session.sessionId);
          if (!lost) throw err;
          this.reopening ??= this.reopen(session, signal).finally(() => {
            this.reopening = undefined;
          });
          await this.reopening;
          return op((this.session as SessionResponse).sessionId);
        }
      },
      {
        what,
        log: this.o.log,
        signal,
        ...(this.o.onTransient ? { onRetry: this.o.onTransient } : {}),
      },
    );
  }

  /** Opens a new session taking over `old` (ours), and checks it is still the same store. */
  async reopen(old: SessionResponse, signal?: AbortSignal): Promise<void> {
    const { app, client, lock, log } = this.o;
    const request = this.request;
    if (!request) throw new Error('agent not started');
    const next = await withRetry(
      () => {
        // Closed meanwhile (the agent stops): a reopening begun by a heartbeat ends here.
        if (!this.session)
          throw new DrError('reopen abandoned: the agent stopped', { code: 'operation_cancelled' });
        return client.openSession(app, { ...request, replaces: old.sessionId });
      },
      { what: 'reopen session', log, signal },
    );
    if (!this.session) {
      // Closed while the gateway answered (the agent stops, or starts again after a replaced
      // store): the session goes back at once, else the agent's next start meets it as another
      // agent for the lease time.
      await client.closeSession(app, next.sessionId).catch(() => undefined); // it lapses anyway
      throw new DrError('reopen abandoned: the agent stopped', { code: 'operation_cancelled' });
    }
    if (next.storeId !== old.storeId) {
      // Another gateway took the app over (or the store was fetched anew from its bucket): the
      // agent starts again, trusting only the MACs the new store holds. Set before any await:
      // no call may send into the new store on the old footing.
      this.replaced = new DrError(
        `the gateway's store for ${app} was replaced while the agent ran`,
        {
          code: 'store_replaced',
          subject: app,
          remedy:
            'a running agent starts again against the new store by itself and re-syncs by MAC; run a one-shot agent again',
        },
      );
      // The restart opens its own session: this one is handed back at once (else it would hold
      // the app against the restart for the lease time).
      await client.closeSession(app, next.sessionId).catch(() => undefined); // it lapses anyway
      throw this.replaced;
    }
    await this.o.onReopen?.(next);
    this.session = next;
    await lock.recordSession(next.sessionId);
    log.info({ sessionId: next.sessionId }, 'gateway restarted; session reopened');
  }

  /** Sends one heartbeat without waiting; its answer refines the clock offset. */
  heartbeat(status: HeartbeatStatus): void {
    const session = this.session;
    if (!session) return;
    const { app, client, log, now } = this.o;
    const sentAt = now();
    client
      .heartbeat(app, {
        sessionId: session.sessionId,
        ...status,
        sentAt,
        clockOffsetMs: this.clockOffsetMs,
      })
      .then((answer) => {
        const back = now();
        if (Number.isFinite(answer.serverTime))
          this.clockOffsetMs = Math.round(answer.serverTime - (sentAt + back) / 2);
        this.o.onHeartbeatAnswer?.(answer);
      })
      .catch((err: unknown) => {
        log.debug({ err: errorMessage(err) }, 'heartbeat not delivered');
        // The gateway forgot the session (it restarted, or its app moved to another gateway):
        // reopen now, not at the next change, so an idle app is served again within seconds.
        // Not once the store is known replaced: the agent is starting again with a session of its own.
        if (!isDrError(err, 'session_lost') || this.session !== session) return;
        if (this.reopening || this.replaced) return;
        this.reopening = this.reopen(session)
          .catch((e: unknown) => {
            if (isDrError(e, 'store_replaced')) this.replaced = e;
            else log.debug({ err: errorMessage(e) }, 'session not reopened; the next call tries');
          })
          .finally(() => {
            this.reopening = undefined;
          });
      });
  }

  /** A heartbeat now and every `everyMs` until `close`, each with the status of its moment. */
  startHeartbeats(everyMs: number, status: () => HeartbeatStatus): void {
    this.heartbeat(status());
    this.timer = setInterval(() => this.heartbeat(status()), everyMs);
    this.timer.unref();
  }

  /** Stops heartbeats and closes the session; bounded, and safe to call twice. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    // Best effort and bounded: an unreachable gateway lets the lease lapse by itself. A reopening
    // under way hands back the session it gets (see reopen): waited for too, within the bound.
    const giveUp = new AbortController();
    await Promise.race([
      Promise.all([
        this.o.client.closeSession(this.o.app, session.sessionId).catch(() => undefined),
        this.reopening?.catch(() => undefined),
      ]),
      sleep(CLOSE_WAIT_MS, undefined, { signal: giveUp.signal }).catch(() => undefined), // cancelled below
    ]);
    giveUp.abort();
  }
}
