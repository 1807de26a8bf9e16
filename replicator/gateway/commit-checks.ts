/** What a commit must say before it becomes a point, and the point it becomes: checks and the point's listing. */
import { DrError } from '../../core/errors.js';
import type { PointRecord } from '../crypto/point-record.js';
import type { Catalog, PointInfo, PointLabel } from './catalog.js';
import type { PendingEntry } from './pending-batches.js';

const LABELS: readonly PointLabel[] = ['fuzzy', 'crash-consistent', 'app-consistent'];

/** The commit as the store checks it. */
export interface CommitShape {
  upToSeq: number;
  label: PointLabel;
  time: Date;
  volumes: Record<string, { size: number; digest: string }>;
}

export function storeBadRequest(app: string, message: string, subject: string): DrError {
  return new DrError(`app ${app}: ${message}`, { code: 'bad_request', subject });
}

/**
 * The batches a point may cover: from the last committed one (`from`) up to the last one the
 * store received and made durable (`received`).
 */
export function checkCommitRange(
  app: string,
  upToSeq: number,
  { from, received }: { from: number; received: number },
): void {
  if (upToSeq < from) {
    throw storeBadRequest(
      app,
      `batches up to ${upToSeq} are already in a point (committed up to ${from})`,
      'upToSeq',
    );
  }
  if (upToSeq > received) {
    throw storeBadRequest(
      app,
      `a point up to batch ${upToSeq} is refused: batches were received only up to ${received}`,
      'upToSeq',
    );
  }
}

/** The app's volume of that name, or an error naming the ones it has. */
export function volumeNamed<V extends { name: string }>(
  app: string,
  volumes: readonly V[],
  name: string,
): V {
  const v = volumes.find((x) => x.name === name);
  if (!v) {
    const known = volumes.map((x) => x.name).join(', ') || '(none registered)';
    throw new DrError(`app ${app} has no volume ${JSON.stringify(name)}`, {
      code: 'bad_request',
      subject: `${app}/${name}`,
      remedy: `use one of: ${known}`,
    });
  }
  return v;
}

/** The checks that need no lock: a sequence number, a known label, a date, known volumes with size and digest. */
export function checkCommit(
  app: string,
  { upToSeq, label, time, volumes }: CommitShape,
  /** Throws when the app has no such volume. */
  volume: (name: string) => unknown,
): void {
  if (!Number.isSafeInteger(upToSeq) || upToSeq < 0)
    throw storeBadRequest(app, `upToSeq ${upToSeq} is not a seq`, 'upToSeq');
  if (!LABELS.includes(label))
    throw storeBadRequest(app, `unknown point label ${JSON.stringify(label)}`, 'label');
  if (Number.isNaN(time.getTime()))
    throw storeBadRequest(app, 'the point time is not a date', 'time');
  for (const [name, v] of Object.entries(volumes)) {
    volume(name);
    if (!isCount(v?.size) || typeof v.digest !== 'string') {
      throw storeBadRequest(app, `volume ${name} needs a size and a digest`, name);
    }
  }
}

/** A signed record must describe the point this commit makes; the caller holds the store's mutex. */
export function checkSignedRecord(
  app: string,
  catalog: Pick<Catalog, 'nextPointId' | 'committedSeq'>,
  r: PointRecord,
  c: CommitShape,
): void {
  const want = {
    app,
    id: catalog.nextPointId,
    seqFrom: catalog.committedSeq + 1,
    seqTo: c.upToSeq,
    time: c.time.toISOString(),
    label: c.label,
  };
  for (const [field, value] of Object.entries(want)) {
    const got = (r as unknown as Record<string, unknown>)[field];
    if (got !== value) {
      throw new DrError(
        `app ${app}: the signed record says ${field} ${JSON.stringify(got)}, the gateway's next point has ${JSON.stringify(value)}`,
        {
          code: 'point_conflict',
          subject: `${app}/${field}`,
          remedy: 'the agent reopens its session and signs the point again',
        },
      );
    }
  }
  const names = (o: object) => Object.keys(o).sort().join(',');
  if (names(r.volumes) !== names(c.volumes))
    throw storeBadRequest(app, 'the signed record names other volumes than the commit', 'volumes');
}

/** The listing of the point a commit makes: its range, label, signed record and each volume's change. */
export function pointInfoOf(
  c: CommitShape & {
    id: number;
    seqFrom: number;
    signed?: { record: PointRecord; sig: string } | undefined;
  },
  delta: readonly PendingEntry[],
  volumeId: (name: string) => number,
): PointInfo {
  const info: PointInfo = {
    id: c.id,
    time: c.time.toISOString(),
    label: c.label,
    seqFrom: c.seqFrom,
    seqTo: c.upToSeq,
    volumes: {},
    ...(c.signed ? { record: structuredClone(c.signed.record), sig: c.signed.sig } : {}),
  };
  for (const [name, v] of Object.entries(c.volumes)) {
    const id = volumeId(name);
    const mine = delta.filter((e) => e.volumeId === id);
    info.volumes[name] = {
      size: v.size,
      digest: v.digest,
      blocksChanged: mine.length,
      bytesChanged: mine.reduce((n, e) => n + e.plainLen, 0),
    };
  }
  return info;
}

function isCount(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}
