import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { readChangedBlocks } from '../capture/read-blocks.js';
import { type ChangedBlock, scanChanges } from '../capture/scan-tracker.js';
import { TraceTracker } from '../capture/trace-tracker.js';
import type { VolumeFile } from '../capture/volume-file.js';
import { findZeroRanges, type ZeroRanges } from '../capture/zero-ranges.js';
import type { WriteCost } from '../transport/wire-types.js';
import { WriteWindow } from './write-window.js';

export type TrackerChoice = 'auto' | 'trace' | 'scan';

/** Where tracefs is (`DR_TRACEFS`) and how large each CPU's trace buffer (`DR_TRACE_BUFFER_KIB`). */
export interface TraceSettings {
  tracefs?: string;
  bufferKiB?: number;
}

/** How one volume's changes are found, and why. */
export interface TrackingInfo {
  kind: 'trace' | 'scan';
  /** Why `auto` chose scan, or why the last round had to scan. */
  reason?: string;
}

/** One round's changes of one volume. */
export interface RoundChanges {
  changes: AsyncIterable<ChangedBlock>;
  /** Set when the whole volume is compared (initial sync, resync after doubt, or the scan tracker). */
  fullScan: boolean;
  /** Why a trace-tracked volume was scanned whole. */
  resyncReason?: string;
}

/**
 * The change tracker of one volume: block tracing where the kernel allows it
 * (root, tracefs, a block device), else scanning. A traced volume is scanned
 * whole whenever its tracker is unsure: at start (writes while the agent was
 * down are unknown), after lost trace events, or after a failed cycle.
 */
export class VolumeTracking {
  private doubt: string | undefined = 'tracker started';
  /** How long the last trace sync took (marker written and read back). */
  lastSyncMs = 0;
  /** How many trace syncs were tried (a cut tells whether one ran inside its freeze). */
  syncs = 0;
  /** What the last whole-volume scan skipped as holes or free space, and how long finding them took. */
  lastZeroMap: ZeroRanges | undefined;

  /** The traced writes of the last ten minutes (none for a scanned volume: no writes seen). */
  private readonly writes: WriteWindow | undefined;

  private constructor(
    readonly info: TrackingInfo,
    private readonly tracer: TraceTracker | undefined,
    private readonly log: Logger,
    private readonly fullCopy: boolean,
    blockSize = 0,
    now: () => number = Date.now,
  ) {
    const sizes = tracer?.writeBlockSizes;
    this.writes = sizes ? new WriteWindow(blockSize, sizes, now()) : undefined;
  }

  static async open(
    choice: TrackerChoice,
    volume: VolumeFile,
    blockSize: number,
    log: Logger,
    trace: TraceSettings = {},
    fullCopy = false,
    now: () => number = Date.now,
  ): Promise<VolumeTracking> {
    if (choice === 'scan') return new VolumeTracking({ kind: 'scan' }, undefined, log, fullCopy);
    const why = await TraceTracker.unavailable(volume.path, trace.tracefs);
    if (why) {
      if (choice === 'trace') {
        throw new DrError(
          `--tracker trace cannot follow volume ${volume.name} (${volume.path}): ${why}`,
          {
            code: 'usage',
            subject: volume.path,
            remedy: 'fix that, or run the agent with --tracker auto or --tracker scan',
          },
        );
      }
      // An image file cannot be traced by design; a device that cannot is worth a warning.
      const level = volume.isBlockDevice ? 'warn' : 'info';
      log[level](
        { volume: volume.name, reason: why },
        'block tracing unavailable; scanning instead',
      );
      return new VolumeTracking({ kind: 'scan', reason: why }, undefined, log, fullCopy);
    }
    const tracer = await TraceTracker.start({
      device: volume.path,
      blockSize,
      log,
      ...(trace.tracefs ? { tracefs: trace.tracefs } : {}),
      ...(trace.bufferKiB ? { bufferKiB: trace.bufferKiB } : {}),
    });
    return new VolumeTracking({ kind: 'trace' }, tracer, log, fullCopy, blockSize, now);
  }

  /** Makes the next round scan the whole volume. */
  distrust(reason: string): void {
    this.doubt ??= reason;
  }

  /**
   * The bytes written over the last ten minutes against the block bytes they dirtied (see
   * WriteTally), or undefined for a scanned volume, whose writes are unknown.
   */
  writeCost(now: number): WriteCost | undefined {
    if (!this.tracer || !this.writes) return undefined;
    this.writes.add(this.tracer.takeWrites(), now);
    return this.writes.total(now);
  }

  /** Blocks written but not yet shipped, as far as the tracker knows (for backlog figures). */
  pendingBlocks(): number {
    return this.tracer?.pendingCount() ?? 0;
  }

  /**
   * The changes to ship this round. For a traced volume, first waits until
   * every write queued before the call has been seen, so a round taken
   * inside a freeze misses nothing.
   */
  async round(o: {
    volume: VolumeFile;
    size: number;
    blockSize: number;
    macKey: Buffer;
    known: Buffer;
    onProgress?: (scanned: number) => void;
  }): Promise<RoundChanges> {
    const scan = (resyncReason?: string): RoundChanges => ({
      changes: scanChanges({
        ...o,
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
        ...(this.fullCopy ? {} : { zeroRanges: () => this.zeroRanges(o.volume, o.size) }),
      }),
      fullScan: true,
      ...(resyncReason ? { resyncReason } : {}),
    });
    if (!this.tracer) return scan();
    const t0 = performance.now();
    try {
      await this.tracer.sync();
    } catch (err) {
      this.distrust(`trace did not answer: ${errorMessage(err)}`);
    } finally {
      this.lastSyncMs = performance.now() - t0;
      this.syncs++;
    }
    const drained = this.tracer.drain();
    const reason =
      this.doubt ?? (drained.unsure ? (drained.reason ?? 'trace events lost') : undefined);
    this.doubt = undefined;
    if (reason) return scan(reason);
    return {
      changes: readChangedBlocks({ ...o, blocks: drained.blocks }),
      fullScan: false,
    };
  }

  /**
   * The volume's holes or free space, asked for as the scan starts: after the tracker started,
   * so a block allocated after the map is taken is a write the tracker (or the next scan) sees.
   */
  private async zeroRanges(volume: VolumeFile, size: number): Promise<ZeroRanges['ranges']> {
    const map = await findZeroRanges(volume, size);
    const first = this.lastZeroMap === undefined || this.lastZeroMap.source !== map.source;
    this.lastZeroMap = map;
    this.log[first ? 'info' : 'debug'](
      {
        volume: volume.name,
        source: map.source,
        zeroBytes: map.zeroBytes,
        volumeBytes: size,
        ms: Math.round(map.ms),
        ...(map.reason ? { reason: map.reason } : {}),
      },
      map.source === 'none'
        ? 'reading every block: no map of unused space'
        : 'unused space read as zeros without reading it',
    );
    return map.ranges;
  }

  async close(): Promise<void> {
    await this.tracer?.close();
  }
}
