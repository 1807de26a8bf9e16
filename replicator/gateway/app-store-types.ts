/** The shapes an app's replica takes and gives: its options, a point's commit request, its stats. */
import type { Logger } from '../../core/log.js';
import type { PointRecord } from '../crypto/point-record.js';
import type { PointLabel } from './catalog.js';

export interface AppStoreOptions {
  /** The app's folder: `<store>/apps/<app>`. */
  dir: string;
  name: string;
  log: Logger;
  segmentBytes: number;
  /** Segment appends with O_DIRECT where the file system allows (default). */
  directIo?: boolean | undefined;
}

export interface CommitRequest {
  /** Every pending batch up to this seq goes into the point; all of them must have arrived. */
  upToSeq: number;
  label: PointLabel;
  /** The instant of the cut; now when left out. */
  time?: Date;
  /** Each volume's size and the agent's keyed digest of it at the point. */
  volumes: Record<string, { size: number; digest: string }>;
  /**
   * The agent's signed record of this point, kept beside it for readers to check. The store
   * cannot check the signature; it checks that the record names this point's id, sequence
   * range, time, label and volumes.
   */
  signed?: { record: PointRecord; sig: string };
}

export interface AppStats {
  /** Bytes in segment files. */
  segmentBytes: number;
  segments: number;
  points: number;
  pendingBatches: number;
  committedSeq: number;
  /** Highest durable seq, pending or committed. */
  lastSeq: number;
  pendingSeqs: number[];
}
