/** Rounds and cuts of one cycle: what changed goes to the shipper, a freeze takes all volumes at one instant. */
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { PidLock } from '../../core/pid-lock.js';
import type { Quiescer, ThawResult } from '../capture/quiesce.js';
import type { VolumeFile } from '../capture/volume-file.js';
import type { VolumeKeys } from '../crypto/volume-key.js';
import type { ConsistencyLabel, Phase } from '../transport/wire-types.js';
import type { MacState } from './mac-state.js';
import type { Shipper } from './shipper.js';
import type { VolumeTracking } from './volume-tracking.js';

export interface SyncProgress {
  /** `initial-sync` while the DR site has no point of this app yet. */
  phase: Phase;
  volume: string;
  scanned: number;
  size: number;
  sentBytes: number;
}

/** A resync by scan of a traced volume, reported in status and logs. */
export interface ResyncReport {
  volume: string;
  /** Bytes found different from the gateway's copy and sent. */
  bytes: number;
  /** The volume's size: what a full resync would have sent. */
  size: number;
  reason: string;
  at: number;
}

/** Blocks copied inside a freeze, sealed and sent after the thaw. */
export type Snapshot = Array<{ volume: OpenVolume; block: number; plain: Buffer; mac: Buffer }>;

export interface OpenVolume {
  name: string;
  id: number;
  file: VolumeFile;
  size: number;
  blockSize: number;
  keys: VolumeKeys;
  tracking: VolumeTracking;
  /** One agent per device, machine-wide. */
  lock: PidLock;
}

/** One cut's freeze, in ms: frozenMs ≈ markerMs + readMs + thawMs (plus scheduling between). */
export interface FreezeSplit {
  /** The freeze hook and `fsfreeze -f` until they returned (not part of frozenMs). */
  enterMs: number;
  /** The trace tracker's marker round trip (every write queued before it seen), all volumes. */
  markerMs: number;
  /** Taking the dirty blocks into memory: reads and their MACs (or a rescan), all volumes. */
  readMs: number;
  /** fsfreeze -u and the thaw hook. */
  thawMs: number;
}

/** The split with each figure to 0.1 ms, for a log line. */
export function roundSplit(s: FreezeSplit): FreezeSplit {
  const r = (ms: number) => Math.round(ms * 10) / 10;
  return {
    enterMs: r(s.enterMs),
    markerMs: r(s.markerMs),
    readMs: r(s.readMs),
    thawMs: r(s.thawMs),
  };
}

export interface CutResult {
  label: ConsistencyLabel;
  /** The instant of the cut (agent clock). */
  at: number;
  scanned: number;
  freezeMs?: number;
  /** Where the freeze time went (and the time to enter it), for the commit log and bench:rpo. */
  freezeSplit?: FreezeSplit;
  /** Why the freeze failed, when it did (the point is then fuzzy). */
  freezeError?: string;
}

/** What a round and a cut need from the agent. */
export interface CutContext {
  volumes: OpenVolume[];
  macState: MacState;
  log: Logger;
  now: () => number;
  phase: () => Phase;
  onProgress?: ((p: SyncProgress) => void) | undefined;
  onResync: (r: ResyncReport) => void;
}

/** A volume resized, or a device detached, stops the cycle with a clear error. */
export async function checkSizes(volumes: readonly OpenVolume[]): Promise<void> {
  for (const v of volumes) {
    let size: number;
    try {
      size = await v.file.size();
    } catch (err) {
      throw new DrError(
        `volume ${v.name} (${v.file.path}) cannot be read any more: ${errorMessage(err)}`,
        {
          code: 'volume_unreadable',
          subject: v.file.path,
          remedy: 'reattach the device, then restart the agent',
          cause: err,
        },
      );
    }
    if (size === v.size) continue;
    if (size === 0 && v.file.isBlockDevice) {
      throw new DrError(`volume ${v.name} (${v.file.path}) has no media: the device was detached`, {
        code: 'volume_unreadable',
        subject: v.file.path,
        remedy: 'reattach the device (losetup, or the cloud disk), then restart the agent',
      });
    }
    throw new DrError(
      `volume ${v.name} (${v.file.path}) changed size from ${v.size} to ${size} bytes while the agent was running`,
      {
        code: 'volume_resized',
        subject: v.file.path,
        remedy:
          'restart the agent to protect the new size (the next point covers it); nothing already replicated is lost',
      },
    );
  }
}

/** One round over every volume: ship what its tracker reports changed. */
export async function shipRound(
  ctx: CutContext,
  shipper: Shipper,
  snapshot: Snapshot | undefined,
  signal?: AbortSignal,
): Promise<{ scanned: number; allTraced: boolean }> {
  const macState = ctx.macState;
  let scanned = 0;
  let allTraced = true;
  for (const v of ctx.volumes) {
    const known = macState.macs.get(v.name) as Buffer;
    const before = shipper.plainBytes;
    const r = await v.tracking.round({
      volume: v.file,
      size: v.size,
      blockSize: v.blockSize,
      macKey: v.keys.mac,
      known,
      onProgress: (done) =>
        ctx.onProgress?.({
          phase: ctx.phase(),
          volume: v.name,
          scanned: done,
          size: v.size,
          sentBytes: shipper.plainBytes - before,
        }),
    });
    if (r.fullScan) {
      scanned += v.size;
      allTraced = false;
    }
    let changed = 0;
    for await (const c of r.changes) {
      signal?.throwIfAborted();
      changed += c.plain.length;
      // Inside a freeze, only copy: sealing and sending wait for the thaw.
      if (snapshot)
        snapshot.push({ volume: v, block: c.block, plain: Buffer.from(c.plain), mac: c.mac });
      else await shipper.add(v, c.block, c.plain, c.mac);
    }
    if (r.resyncReason) {
      ctx.onResync({
        volume: v.name,
        bytes: changed,
        size: v.size,
        reason: r.resyncReason,
        at: ctx.now(),
      });
      ctx.log.info(
        { volume: v.name, reason: r.resyncReason, bytesChanged: changed, volumeBytes: v.size },
        'resynced by scan: only blocks that differ from the gateway were sent',
      );
    }
  }
  return { scanned, allTraced };
}

/**
 * The cut: freeze, take every block still changed into memory (all volumes
 * at one instant: a consistency group), thaw, then ship. A freeze that
 * fails leaves the point fuzzy; the thaw always runs; the next cut retries.
 */
export async function frozenCut(
  ctx: CutContext,
  quiescer: Quiescer,
  shipper: Shipper,
  signal?: AbortSignal,
): Promise<CutResult> {
  // What the rounds left in the open batch travels while the freeze is entered and the cut taken.
  await shipper.flush();
  let frozen: Awaited<ReturnType<Quiescer['freeze']>>;
  try {
    frozen = await quiescer.freeze();
  } catch (err) {
    ctx.log.warn(
      { err: errorMessage(err) },
      'freeze failed; this point is fuzzy, the next cut retries',
    );
    const { scanned } = await shipRound(ctx, shipper, undefined, signal);
    return { label: 'fuzzy', at: ctx.now(), scanned, freezeError: errorMessage(err) };
  }
  const at = ctx.now();
  const snapshot: Snapshot = [];
  let scanned = 0;
  let thawed: ThawResult = { frozenMs: 0, expired: false };
  const roundStart = performance.now();
  const syncBefore = ctx.volumes.map((v) => v.tracking.syncs);
  let roundMs = 0;
  try {
    ({ scanned } = await shipRound(ctx, shipper, snapshot, signal));
  } finally {
    roundMs = performance.now() - roundStart;
    thawed = await frozen.thaw();
    ctx.log.debug({ roundMs, blocks: snapshot.length, frozenMs: thawed.frozenMs }, 'cut taken');
    if (thawed.thawError) ctx.log.error({ err: thawed.thawError }, 'thaw reported an error');
  }
  for (const s of snapshot) await shipper.add(s.volume, s.block, s.plain, s.mac);
  // A volume's marker time counts only when its tracker synced inside this freeze.
  const markerMs = ctx.volumes.reduce(
    (n, v, i) => n + (v.tracking.syncs > (syncBefore[i] ?? 0) ? v.tracking.lastSyncMs : 0),
    0,
  );
  const freezeSplit: FreezeSplit = {
    enterMs: frozen.enterMs,
    markerMs,
    readMs: Math.max(0, roundMs - markerMs),
    thawMs: thawed.thawMs ?? 0,
  };
  if (thawed.expired) {
    // The watchdog thawed at the deadline while blocks were still being taken: not one instant.
    ctx.log.warn(
      { frozenMs: thawed.frozenMs },
      'the freeze outlasted its timeout; this point is fuzzy',
    );
    return { label: 'fuzzy', at, scanned, freezeMs: thawed.frozenMs, freezeSplit };
  }
  return { label: frozen.label, at, scanned, freezeMs: thawed.frozenMs, freezeSplit };
}
