/** The round trip's resync check: what the agent resent after failback, against what changed. */
import { rm } from 'node:fs/promises';
import type { PointInfo } from '../../replicator/transport/wire-types.js';
import { APP, type ChaosRig, RECORDS_FILE } from './chaos-rig.js';
import { changedBytes, checkPointRecords, checkSqlite } from './point-checks.js';
import type { RoundTripReport } from './round-trip-report.js';
import { DB_FILE } from './round-trip-site.js';

/** The agent's resync after failback sends at most twice what changed since the failover's point. */
export async function resentAgainstChanged(
  rig: ChaosRig,
  report: RoundTripReport,
  scratch: string,
  base: PointInfo,
  after: string[],
  linesBefore: number,
  rowsAtSource: number,
): Promise<void> {
  const lines = rig
    .agentLines()
    .slice(linesBefore)
    .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('resynced by scan'));
  const resent = lines.reduce((s, l) => s + Number(l.bytesChanged ?? 0), 0);
  const b = await checkPointRecords({
    home: rig.t.home,
    app: APP,
    point: base.id,
    volumes: rig.volumes.map((v) => v.name),
    file: `/${RECORDS_FILE}`,
    scratch,
    keep: true,
  });
  // The database the failover started from: intact, every row the source acknowledged.
  const db = await checkSqlite(b.images[0] as string, `/${DB_FILE}`, scratch);
  report.sqliteChecks++;
  if (db.maxId < rowsAtSource)
    throw new Error(
      `the failover's point ${base.id} ends at database row ${db.maxId}; the source acknowledged ${rowsAtSource}`,
    );
  const blockSize = (await rig.t.config()).apps[APP]?.blockSize ?? 65536;
  let changed = 0;
  for (const [i, img] of b.images.entries())
    changed += await changedBytes(img, after[i] as string, blockSize);
  for (const img of b.images) await rm(img, { force: true });
  report.bytesResent += resent;
  report.bytesChanged += changed;
  if (resent > 2 * changed)
    throw new Error(`the agent resent ${resent} bytes, more than twice the ${changed} changed`);
}
