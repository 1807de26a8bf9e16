/** An app's volumes as the agent holds them: opened, locked machine-wide, tracked, and frozen together. */
import type { AppConfig } from '../../core/config.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { PidLock } from '../../core/pid-lock.js';
import { Quiescer } from '../capture/quiesce.js';
import { VolumeFile } from '../capture/volume-file.js';
import { lockDevice } from './device-lock.js';
import { type TraceSettings, type TrackerChoice, VolumeTracking } from './volume-tracking.js';

/** One volume opened for replication, before the gateway gave it an id and keys. */
export interface HeldVolume {
  name: string;
  file: VolumeFile;
  /** Its size when opened: a change while the agent runs stops the cycle (see `checkSizes`). */
  size: number;
  tracking: VolumeTracking;
  /** One agent per device, machine-wide. */
  lock: PidLock;
}

export interface VolumeSetOptions {
  app: string;
  appConfig: AppConfig;
  tracker: TrackerChoice;
  trace: TraceSettings;
  log: Logger;
  /** Read holes and free space too (no map of unused space). */
  fullCopy?: boolean;
  /** Where device locks go (default: `deviceLockDir()`, machine-wide). */
  lockDir?: string;
  /** The agent's clock (default Date.now), for the window of write figures. */
  now?: () => number;
}

/**
 * Every volume of one app, held from `open` to `close`: a read handle, a machine-wide device lock
 * (a second agent on the same disk is refused), and its change tracker, started before anything
 * is read so no write is missed; plus the quiescer that freezes them for a cut.
 */
export class VolumeSet {
  private constructor(
    readonly volumes: readonly HeldVolume[],
    readonly quiescer: Quiescer,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the app's volumes in dr.yaml order. A failure (a missing file, a device another agent
   * holds, tracing refused) releases what was opened before it and is thrown.
   */
  static async open(o: VolumeSetOptions): Promise<VolumeSet> {
    const { app, appConfig, log } = o;
    const held: HeldVolume[] = [];
    const partial: Array<Partial<HeldVolume> & { file: VolumeFile }> = [];
    let quiescer: Quiescer | undefined;
    try {
      for (const v of appConfig.volumes) {
        const file = await VolumeFile.open(v.name, v.path, v.size);
        const entry: Partial<HeldVolume> & { file: VolumeFile } = { file };
        partial.push(entry);
        const size = await file.size();
        entry.lock = await lockDevice(v.path, v.name, app, o.lockDir);
        // Tracing starts before anything is read, so no write between here and the first scan is missed.
        entry.tracking = await VolumeTracking.open(
          o.tracker,
          file,
          appConfig.blockSize,
          log,
          o.trace,
          o.fullCopy ?? false,
          o.now,
        );
        held.push({ name: v.name, file, size, tracking: entry.tracking, lock: entry.lock });
      }
      const q = appConfig.quiesce;
      quiescer = new Quiescer({
        ...(q?.fsfreeze.length ? { fsfreeze: q.fsfreeze } : {}),
        ...(q?.freeze ? { freezeCmd: q.freeze } : {}),
        ...(q?.thaw ? { thawCmd: q.thaw } : {}),
        ...(q ? { timeoutMs: q.timeout } : {}),
        log,
      });
      // A previous agent killed while the volumes were frozen: thaw them first.
      if (quiescer.enabled) await quiescer.recover();
      return new VolumeSet(held, quiescer, log);
    } catch (err) {
      quiescer?.close();
      for (const e of partial) {
        await e.tracking?.close();
        await e.lock?.release();
        await e.file.close();
      }
      throw err;
    }
  }

  /** Removes trace instances, closes the volumes and releases their locks. */
  async close(): Promise<void> {
    for (const v of this.volumes) {
      await v.tracking
        .close()
        .catch((err: unknown) =>
          this.log.warn(
            { volume: v.name, err: errorMessage(err) },
            'could not remove the trace instance',
          ),
        );
      await v.file.close().catch(() => undefined); // read-only handles: nothing to lose
      await v.lock.release();
    }
    this.quiescer.close();
  }
}
