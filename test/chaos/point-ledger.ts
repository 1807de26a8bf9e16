/** What a chaos run has seen of the gateway's points, and the checks over them. */
import type { PointInfo } from '../../replicator/transport/wire-types.js';
import type { ChaosReport } from './chaos-report.js';
import { APP, type ChaosRig } from './chaos-rig.js';
import { checkPointRecords } from './point-checks.js';

export const consistent = (p: PointInfo) => p.label !== 'fuzzy';

/** The points listed so far, those restored and checked, and when the newest consistent one was cut. */
export class PointLedger {
  /** point → records per volume, for each point restored and checked */
  readonly checked = new Map<number, number[]>();
  /** every point the gateway has listed */
  seen = new Map<number, PointInfo>();
  newestConsistentAt = 0;
  private readonly volumeNames: string[];

  constructor(
    private readonly rig: ChaosRig,
    private readonly report: ChaosReport,
    /** The records file on each volume ('/records.log'), or 'raw' for image files. */
    private readonly file: string,
    private readonly scratch: string,
    private readonly fail: (round: number, kind: string, what: string) => void,
  ) {
    this.volumeNames = rig.volumes.map((v) => v.name);
  }

  /** The points the gateway lists; notes when the newest consistent one was cut. */
  async points(): Promise<PointInfo[] | undefined> {
    const pts = await this.rig.points();
    if (pts) {
      const c = pts.filter(consistent).at(-1);
      if (c) this.newestConsistentAt = Math.max(this.newestConsistentAt, Date.parse(c.time));
    }
    return pts;
  }

  /** Restores a point, checks its records on both volumes and their order against points checked before. */
  async checkPoint(id: number, keep = false) {
    const r = await checkPointRecords({
      home: this.rig.t.home,
      app: APP,
      point: id,
      volumes: this.volumeNames,
      file: this.file,
      scratch: this.scratch,
      keep,
    });
    this.report.pointsChecked++;
    this.checked.set(id, r.counts);
    for (const [other, counts] of this.checked) {
      const earlier = other < id;
      for (let i = 0; i < counts.length; i++) {
        const a = counts[i] as number;
        const b = r.counts[i] as number;
        if (other !== id && (earlier ? a > b : a < b)) {
          throw new Error(
            `point ${id} holds ${b} records on ${this.volumeNames[i]} but point ${other} holds ${a}: a later point lost records`,
          );
        }
      }
    }
    return r;
  }

  /** Every point an agent logged as committed is still listed, and listed points never change or vanish. */
  async checkAcknowledged(n: number, kind: string): Promise<void> {
    const pts = await this.points();
    if (!pts) throw new Error('the gateway did not list points');
    const now = new Map(pts.map((p) => [p.id, p]));
    const acknowledged = new Set<number>();
    for (const line of this.rig.agentLines()) {
      if (line.msg !== 'recovery point committed') continue;
      const id = Number(line.point);
      acknowledged.add(id);
      if (!now.has(id)) this.fail(n, kind, `point ${id} was acknowledged to the agent but is gone`);
    }
    for (const [id, p] of this.seen) {
      const q = now.get(id);
      // With the object store a point is listed once committed in the gateway's local log, and
      // acknowledged once in the bucket: one never acknowledged goes with a lost machine (its
      // agent resends the data), and its id may name the next point.
      if (kind === 'gateway-machine-loss' && !acknowledged.has(id) && q?.time !== p.time) {
        this.report.unacknowledgedGone = (this.report.unacknowledgedGone ?? 0) + 1;
        continue;
      }
      if (!q) this.fail(n, kind, `point ${id} was listed before but is gone`);
      else if (q.time !== p.time || q.label !== p.label || q.seqTo !== p.seqTo)
        this.fail(n, kind, `point ${id} changed: ${JSON.stringify(p)} became ${JSON.stringify(q)}`);
    }
    this.seen = now;
  }
}
