/** One replication cycle: pre-copy rounds, the cut, and one signed point for all volumes (or none when nothing changed). */
import { errorMessage, isDrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Quiescer } from '../capture/quiesce.js';
import { volumeDigest } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { ConsistencyLabel, PointInfo } from '../transport/wire-types.js';
import type { AgentStatus } from './agent-status.js';
import type { BatchSequence } from './batch-sequence.js';
import {
  type CutContext,
  checkSizes,
  type FreezeSplit,
  frozenCut,
  type OpenVolume,
  type ResyncReport,
  roundSplit,
  type SyncProgress,
  shipRound,
} from './cut.js';
import type { GatewaySession } from './gateway-session.js';
import type { MacState } from './mac-state.js';
import type { PointChain } from './point-chain.js';
import { protectionRefusal } from './protection-wait.js';
import type { Shipper } from './shipper.js';

export interface CycleReport {
  /** The point committed, or (with `unchanged`) the newest one, which is still the state now. */
  point: PointInfo;
  /**
   * Nothing changed since `point`, so none was committed: a copy every second of an idle disk
   * would only bury the points that matter.
   */
  unchanged?: boolean;
  blocksSent: number;
  /** Of those, blocks sent as references to a block the gateway already held (absent: none). */
  blocksRepeated?: number;
  bytesSent: number;
  scannedBytes: number;
  ms: number;
  /** How long the volumes were frozen for the cut, when they were. */
  freezeMs?: number;
}

/**
 * Where one cycle's time went, in ms: pre-copy rounds, the cut (freeze, copy, thaw, the copied
 * blocks handed to the shipper), the wait for the last acknowledgements, the commit round trip.
 */
export interface CycleSplit {
  precopyMs: number;
  cutMs: number;
  drainMs: number;
  commitMs: number;
}

function cycleSplit(t0: number, precopy: number, cut: number, drained: number, end: number) {
  return {
    precopyMs: precopy - t0,
    cutMs: cut - precopy,
    drainMs: drained - cut,
    commitMs: end - drained,
  } satisfies CycleSplit;
}

const repeated = (s: Shipper) => (s.repeatedBlocks ? { blocksRepeated: s.repeatedBlocks } : {});

/** Pre-copy stops once a round finds less than this: the rest waits for the cut. */
const PRECOPY_ENOUGH = 8 * 1024 * 1024;

/** The parts a cycle works with, held by the agent from its start to its stop. */
export interface CycleParts {
  app: string;
  volumes: readonly OpenVolume[];
  macState: MacState;
  quiescer: Quiescer;
  session: GatewaySession;
  chain: PointChain;
  seq: BatchSequence;
  status: AgentStatus;
  /** Commits and protection reads (batches go through the shipper). */
  client: Pick<GatewayClient, 'commit' | 'protection'>;
  /** A fresh shipper for one cycle: where its blocks go. */
  shipper: (signal?: AbortSignal) => Shipper;
  log: Logger;
  now: () => number;
  onProgress?: ((p: SyncProgress) => void) | undefined;
  /** A traced volume resynced by scan. */
  onResync?: ((r: ResyncReport) => void) | undefined;
}

/**
 * Runs cycles over one started agent's parts. A cycle: pre-copy rounds ship what changed while
 * writes go on; then the cut: freeze (when the app has a quiesce setup), take what is still
 * changed into memory, thaw, ship it, and commit one point for all volumes. Without a freeze the
 * round itself is the cut and the point is fuzzy.
 */
export class CycleRunner {
  constructor(private readonly p: CycleParts) {}

  async cycle(signal?: AbortSignal): Promise<CycleReport> {
    const { app, macState, quiescer, session, chain, seq, status, client, log, now } = this.p;
    const started = now();
    const shipper = this.p.shipper(signal);
    let scannedBytes = 0;
    try {
      await checkSizes(this.p.volumes);
      // Pre-copy: with a freeze ahead, ship the bulk now so the freeze stays short.
      const rounds = quiescer.enabled ? 3 : 1;
      for (let r = 0; r < rounds; r++) {
        const before = shipper.plainBytes;
        const { scanned, allTraced } = await shipRound(
          this.cutContext(),
          shipper,
          undefined,
          signal,
        );
        scannedBytes += scanned;
        if (!allTraced || shipper.plainBytes - before < PRECOPY_ENOUGH) break;
      }
      const precopyDone = now();
      let label: ConsistencyLabel = 'fuzzy';
      let cutAt = now();
      let freezeMs: number | undefined;
      let freezeSplit: FreezeSplit | undefined;
      if (quiescer.enabled) {
        const cut = await frozenCut(this.cutContext(), quiescer, shipper, signal);
        label = cut.label;
        cutAt = cut.at;
        freezeMs = cut.freezeMs;
        freezeSplit = cut.freezeSplit;
        if (freezeMs !== undefined) status.lastFreezeMs = freezeMs;
        if (cut.freezeError) status.lastError = cut.freezeError;
        scannedBytes += cut.scanned;
      }
      const cutDone = now();
      await shipper.finish();
      await macState.flush();
      const drained = now();
      const volumes: Record<string, { size: number; digest: string }> = {};
      for (const v of this.p.volumes) {
        const macs = macState.macs.get(v.name) as Buffer;
        volumes[v.name] = {
          size: v.size,
          digest: volumeDigest(v.keys.mac, v.size, macs).toString('hex'),
        };
      }
      const upToSeq = Math.max(shipper.lastAcked, seq.lastAcked);
      const prior = status.newestPoint;
      // Nothing shipped: a new point would hold exactly the last one's blocks. Only a cut that
      // is consistent where the last point was fuzzy is worth committing again.
      if (
        prior &&
        (prior.label !== 'fuzzy' || label === 'fuzzy') &&
        shipper.blocks === 0 &&
        upToSeq <= chain.committedSeq &&
        status.lastError === undefined
      ) {
        // No batch or commit told it: ask whether the app was paused or failed over meanwhile.
        const p = await session.call('protection state', () => client.protection(app), signal);
        const refusal = protectionRefusal(app, p);
        if (refusal) throw refusal;
        status.phase = 'continuous';
        const first = status.unchangedAt === undefined;
        status.unchangedAt = cutAt; // the agent sends it with the heartbeat after each cycle
        const ms = now() - started;
        // Said once per quiet stretch: a line a second would bury the log.
        if (first)
          log.info(
            { point: prior.id, label: prior.label, ms },
            'no change since the last point; none committed until something changes',
          );
        else log.debug({ point: prior.id, ms }, 'no change since the last point');
        return {
          point: prior,
          unchanged: true,
          blocksSent: 0,
          bytesSent: 0,
          scannedBytes,
          ms,
          ...(freezeMs !== undefined ? { freezeMs } : {}),
        };
      }
      // The point's time is the cut's, moved onto the gateway's clock, so lag reads right
      // across machines.
      const signed = chain.next({
        timeMs: cutAt + session.clockOffsetMs,
        label,
        upToSeq,
        volumes,
      });
      const point = await session.call(
        'commit point',
        (sessionId) => client.commit(app, { sessionId, ...signed }),
        signal,
      );
      await chain.committed(signed.record, session.current?.storeId ?? '', now());
      const split = cycleSplit(started, precopyDone, cutDone, drained, now());
      seq.acked(upToSeq);
      status.newestPoint = point;
      status.unchangedAt = undefined;
      status.phase = 'continuous';
      status.lastError = undefined;
      const ms = now() - started;
      log.info(
        {
          point: point.id,
          label,
          blocksSent: shipper.blocks,
          ...repeated(shipper),
          bytesSent: shipper.bytesSent,
          ms,
          ...(freezeMs !== undefined ? { freezeMs } : {}),
          ...(freezeSplit ? { freezeSplit: roundSplit(freezeSplit) } : {}),
          split,
        },
        'recovery point committed',
      );
      return {
        point,
        blocksSent: shipper.blocks,
        ...repeated(shipper),
        bytesSent: shipper.bytesSent,
        scannedBytes,
        ms,
        ...(freezeMs !== undefined ? { freezeMs } : {}),
      };
    } catch (err) {
      // What was acknowledged stays recorded. Blocks drained from a tracker but
      // not acknowledged would be missed: the next round rescans those volumes.
      await shipper.settle();
      seq.acked(shipper.lastAcked);
      await macState.flush().catch(() => undefined); // best effort: a missed flush only resends blocks
      for (const v of this.p.volumes) v.tracking.distrust('the previous cycle failed');
      status.lastError = errorMessage(err);
      // The gateway's next point is not the one we signed: read its state again before the next cycle.
      const current = session.current;
      if (isDrError(err, 'point_conflict') && current) {
        await session
          .reopen(current, signal)
          .catch((e: unknown) =>
            log.warn({ err: errorMessage(e) }, 'could not reread the gateway state'),
          );
      }
      throw err;
    } finally {
      shipper.close();
    }
  }

  private cutContext(): CutContext {
    const { volumes, macState, log, now, status, onProgress, onResync } = this.p;
    return {
      volumes: volumes as OpenVolume[],
      macState,
      log,
      now,
      phase: () => status.phase,
      onProgress,
      onResync: (r) => {
        status.lastResync = r;
        onResync?.(r);
      },
    };
  }
}
