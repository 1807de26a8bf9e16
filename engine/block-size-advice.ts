/**
 * What a volume's block size costs its writes, as `dr status`, chat's `status APP` and the status
 * page say it: the write amplification (block bytes dirtied per byte written) and, when it is
 * high over enough writes, the smaller block size that would cut it.
 */
import { formatBytes, formatDuration } from '../core/units.js';
import type { AppStatus, VolumeStatus, WriteCost } from '../replicator/transport/wire-types.js';

/** Fewer bytes written over the window than this say too little about the workload for advice. */
export const ADVICE_MIN_WRITTEN = 64 * 1024 * 1024;
/** Below this amplification the block size fits the writes: no advice. */
export const ADVICE_MIN_AMPLIFICATION = 2;
/** A smaller size is advised only when it cuts the block bytes by at least this share. */
const ADVICE_MIN_CUT = 0.25;
export const BLOCK_SIZE_DOCS = 'docs/replication.md#choosing-a-block-size';

export interface BlockSizeAdvice {
  /** The block size advised. */
  blockSize: number;
  /** Its write amplification on the same writes. */
  writeAmplification: number;
}

/** Block bytes dirtied per byte written at `blockSize` (the volume's own by default); undefined with no writes. */
export function writeAmplification(w: WriteCost, blockSize = w.blockSize): number | undefined {
  if (!(w.writtenBytes > 0)) return undefined;
  const d = w.dirtied.find((x) => x.blockSize === blockSize);
  return d ? d.bytes / w.writtenBytes : undefined;
}

/**
 * The smaller block size to advise, or undefined: none when fewer than 64 MiB were written in the
 * window or the amplification is under 2x. Of the smaller sizes counted, the largest that fits
 * (under 2x), since smaller blocks cost a larger, slower initial sync and more work per byte;
 * else the one that cuts most, when it cuts by a quarter or more.
 */
export function blockSizeAdvice(w: WriteCost): BlockSizeAdvice | undefined {
  const now = writeAmplification(w);
  if (now === undefined || w.writtenBytes < ADVICE_MIN_WRITTEN || now < ADVICE_MIN_AMPLIFICATION)
    return undefined;
  const smaller = w.dirtied
    .filter((d) => d.blockSize < w.blockSize)
    .map((d) => ({ blockSize: d.blockSize, writeAmplification: d.bytes / w.writtenBytes }))
    .sort((a, b) => b.blockSize - a.blockSize);
  const best = smaller.reduce<BlockSizeAdvice | undefined>(
    (m, c) => (m === undefined || c.writeAmplification < m.writeAmplification ? c : m),
    undefined,
  );
  const pick = smaller.find((c) => c.writeAmplification < ADVICE_MIN_AMPLIFICATION) ?? best;
  if (!pick || pick.writeAmplification > now * (1 - ADVICE_MIN_CUT)) return undefined;
  return pick;
}

/** A block size in words, whole: 16 KiB (formatBytes would say 16.0 KiB). */
function blockText(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

const times = (n: number) => `${n.toFixed(1)}x`;

/** The lines of one volume (`label` before each): its write amplification, then the advice when there is one. */
export function volumeWriteLines(
  volume: string,
  w: WriteCost | undefined,
  trackerKind: string | undefined,
  label = volume,
): string[] {
  const name = label;
  if (!w) {
    // Older agents send no figure: say nothing rather than guess.
    return trackerKind === 'scan'
      ? [`${name}: write amplification unknown (the scan tracker does not see writes)`]
      : [];
  }
  const window = formatDuration(w.windowSeconds * 1000);
  const now = writeAmplification(w);
  if (now === undefined) return [`${name}: write amplification -, no writes in the last ${window}`];
  const dirtied = w.dirtied.find((d) => d.blockSize === w.blockSize)?.bytes ?? 0;
  const others = w.dirtied
    .filter((d) => d.blockSize !== w.blockSize)
    .map((d) => `${blockText(d.blockSize)}: ${times(d.bytes / w.writtenBytes)}`)
    .join(', ');
  const lines = [
    `${name}: write amplification ${times(now)} at ${blockText(w.blockSize)} blocks (${formatBytes(w.writtenBytes)} written in the last ${window} dirtied ${formatBytes(dirtied)} of blocks${others ? `; ${others}` : ''})`,
  ];
  const advice = blockSizeAdvice(w);
  if (advice) {
    const cut = Math.round((1 - advice.writeAmplification / now) * 100);
    lines.push(
      `${name}: advice: ${blockText(advice.blockSize)} blocks would cut that to ${times(advice.writeAmplification)} (${cut}% fewer block bytes to ship). The block size is fixed once replicated: protect the volumes again under a new app name with \`dr app add NEWAPP --volume ${volume}=PATH … --block-size ${blockText(advice.blockSize).replace(' ', '')}\`, which costs a new initial sync (larger and slower with small blocks); see ${BLOCK_SIZE_DOCS}`,
    );
  }
  return lines;
}

/** Every volume's lines of one app, `prefix` before each (chat names the app there). */
export function writeCostLines(s: AppStatus, prefix = ''): string[] {
  // A state published by an older gateway may carry neither field: then there is nothing to say.
  const trackers = s.trackers ?? {};
  const names = new Set([...(s.volumes ?? []).map((v) => v.name), ...Object.keys(trackers)]);
  const byName = new Map((s.volumes ?? []).map((v) => [v.name, v]));
  return [...names].flatMap((n) =>
    volumeWriteLines(n, byName.get(n)?.writes, trackers[n]?.kind, `${prefix}${n}`),
  );
}

/** A volume of `--json` output: the gateway's figures, with the amplification and any advice worked out. */
export type VolumeRow = VolumeStatus & {
  writeAmplification?: number;
  blockSizeAdvice?: BlockSizeAdvice;
};

/** The app's status with each volume's write amplification and advice added (for JSON). */
export function withWriteCost<T extends AppStatus>(s: T): T {
  if (!s.volumes) return s;
  const volumes: VolumeRow[] = s.volumes.map((v) => {
    const amp = v.writes ? writeAmplification(v.writes) : undefined;
    const advice = v.writes ? blockSizeAdvice(v.writes) : undefined;
    return {
      ...v,
      ...(amp !== undefined ? { writeAmplification: amp } : {}),
      ...(advice ? { blockSizeAdvice: advice } : {}),
    };
  });
  return { ...s, volumes };
}
