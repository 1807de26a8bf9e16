/** The chain of signed points as the agent extends it: the head it follows, the next record, its own ledger. */
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  type PointRecord,
  pointSigningKey,
  recordHash,
  type SignedRecord,
  signRecord,
} from '../crypto/point-record.js';
import { checkRecord } from '../recovery/point-check.js';
import type { ConsistencyLabel, SessionResponse } from '../transport/wire-types.js';
import { type LedgerEntry, readLedger, writeLedger } from './point-ledger.js';

/** The point the next one follows: its id, its record's hash (null when unsigned) and its time. */
export interface ChainHead {
  id: number;
  hash: string | null;
  timeMs: number;
}

/** What one cut puts into its point. */
export interface CutRecord {
  /** The cut's instant on the gateway's clock. */
  timeMs: number;
  label: ConsistencyLabel;
  /** The last batch the point covers. */
  upToSeq: number;
  volumes: PointRecord['volumes'];
}

/**
 * The agent's side of the chain of recovery points of one app. Points are signed with a key
 * derived from the KEK (never sent anywhere); each names its predecessor's hash; the last one
 * the agent committed is kept in its state folder, so a gateway that lost, rolled back or
 * withholds points is caught at the next start.
 */
export class PointChain {
  private readonly key: Buffer;
  private headPoint: ChainHead | undefined;
  private mine: LedgerEntry | undefined;
  /** The last batch sequence committed into a point. */
  committedSeq = 0;

  constructor(
    private readonly app: string,
    kek: KeyEncryptionKey,
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {
    this.key = pointSigningKey(kek, app);
  }

  get head(): ChainHead | undefined {
    return this.headPoint;
  }

  /** The last point this agent committed (its own view, to set beside the gateway's). */
  get ledger(): LedgerEntry | undefined {
    return this.mine;
  }

  /**
   * Takes the gateway's latest point as the head of the chain, after checking it against this
   * agent's own record: a latest point that does not verify, or that is older than the last
   * point this agent committed into the same store, means the gateway lost, rolled back or
   * withholds points, and the agent stops saying so.
   */
  async adopt(session: SessionResponse): Promise<void> {
    const { app, stateDir } = this;
    const g = session.latestPoint;
    if (g && (g.record !== undefined || g.sig !== undefined)) {
      const trust = checkRecord(this.key, app, g);
      if (trust.status !== 'signed') {
        throw new DrError(
          `the gateway's latest point ${g.id} of ${app} does not verify: ${trust.reason}`,
          {
            code: 'point_unverified',
            subject: `${app}/${g.id}`,
            remedy: 'check the gateway store for tampering; restore it from a backup',
          },
        );
      }
    }
    this.mine = await readLedger(stateDir);
    const mine = this.mine;
    if (mine && mine.storeId !== session.storeId) {
      this.log.warn(
        { point: mine.id, storeId: session.storeId },
        'the gateway store was replaced since this agent last committed; its chain starts again there',
      );
    } else if (mine && (!g || g.id < mine.id)) {
      throw new DrError(
        `the gateway's latest point of ${app} is ${g ? `#${g.id}` : 'none'}, but this agent committed #${mine.id} (${mine.time}): the gateway lost, rolled back or withholds points`,
        {
          code: 'point_unverified',
          subject: app,
          remedy: `check the gateway store (restore it from a backup); to start a new chain from what it holds, move ${stateDir}/last-point.json aside`,
        },
      );
    } else if (mine && g?.id === mine.id && g.record && recordHash(g.record) !== mine.hash) {
      throw new DrError(
        `the gateway's point #${g.id} of ${app} is not the one this agent committed: the history forked`,
        {
          code: 'point_unverified',
          subject: `${app}/${g.id}`,
          remedy: 'check the gateway store for tampering; restore it from a backup',
        },
      );
    }
    this.headPoint = g
      ? { id: g.id, hash: g.record ? recordHash(g.record) : null, timeMs: Date.parse(g.time) || 0 }
      : undefined;
    this.committedSeq = session.committedSeq;
  }

  /**
   * The next point's record, signed. It is signed once and resent as is: a commit whose answer
   * was lost is recognised by the gateway, never made twice. The clock offset is re-estimated from
   * each heartbeat, so a slow round trip can move the cut's time back: a point's time never goes
   * before the previous point's, or every reader of the chain would refuse it.
   */
  next(cut: CutRecord): SignedRecord {
    const head = this.headPoint;
    const record: PointRecord = {
      v: 1,
      app: this.app,
      id: (head?.id ?? 0) + 1,
      seqFrom: this.committedSeq + 1,
      seqTo: cut.upToSeq,
      time: new Date(Math.max(cut.timeMs, head?.timeMs ?? 0)).toISOString(),
      label: cut.label,
      volumes: cut.volumes,
      prev: head?.hash ?? null,
    };
    return signRecord(this.key, record);
  }

  /** The gateway took `record` into `storeId`: it is the head now, and the agent's ledger says so. */
  async committed(record: PointRecord, storeId: string, committedAt: number): Promise<void> {
    const hash = recordHash(record);
    this.headPoint = { id: record.id, hash, timeMs: Date.parse(record.time) };
    this.committedSeq = record.seqTo;
    this.mine = {
      storeId,
      id: record.id,
      hash,
      seqTo: record.seqTo,
      time: record.time,
      label: record.label,
      committedAt: new Date(committedAt).toISOString(),
    };
    await writeLedger(this.stateDir, this.mine);
  }
}
