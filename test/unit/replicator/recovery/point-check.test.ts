import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import type { KeyEncryptionKey } from '../../../../replicator/crypto/key-encryption-key.js';
import {
  type PointRecord,
  pointSigningKey,
  recordHash,
  signRecord,
} from '../../../../replicator/crypto/point-record.js';
import { checkPoints, requireVerified } from '../../../../replicator/recovery/point-check.js';
import type { PointInfo } from '../../../../replicator/transport/wire-types.js';

const kek = (): KeyEncryptionKey => ({ id: randomBytes(8), key: randomBytes(32) });

/** A chain of `n` signed points as an honest agent and gateway would list them. */
function chain(k: KeyEncryptionKey, n: number, app = 'web'): PointInfo[] {
  const key = pointSigningKey(k, app);
  const out: PointInfo[] = [];
  let prev: string | null = null;
  for (let id = 1; id <= n; id++) {
    const record: PointRecord = {
      v: 1,
      app,
      id,
      seqFrom: (id - 1) * 10 + 1,
      seqTo: id * 10,
      time: new Date(Date.UTC(2026, 0, 1, 0, id)).toISOString(),
      label: id % 2 ? 'fuzzy' : 'app-consistent',
      volumes: { data: { size: 4096, digest: `d${id}` } },
      prev,
    };
    const { sig } = signRecord(key, record);
    out.push({
      id,
      time: record.time,
      label: record.label,
      seqFrom: record.seqFrom,
      seqTo: record.seqTo,
      volumes: { data: { size: 4096, digest: `d${id}`, blocksChanged: 1, bytesChanged: 4096 } },
      record,
      sig,
    });
    prev = recordHash(record);
  }
  return out;
}

const statuses = (k: KeyEncryptionKey, points: PointInfo[]) =>
  checkPoints(k, 'web', points).map((t) => t.status);

describe('point records and their chain', () => {
  it('verifies an honest chain, and across points dropped by retention', () => {
    const k = kek();
    const points = chain(k, 4);
    expect(statuses(k, points)).toEqual(['signed', 'signed', 'signed', 'signed']);
    const kept = [points[0], points[3]] as PointInfo[];
    expect(statuses(k, kept)).toEqual(['signed', 'signed']);
  });

  it('refuses a point signed with another key (the gateway forging one)', () => {
    const k = kek();
    const points = chain(k, 2);
    const forged = chain(kek(), 3)[2] as PointInfo;
    const out = checkPoints(k, 'web', [...points, forged]);
    expect(out[2]?.status).toBe('bad');
    expect(out[2]?.reason).toMatch(/signature does not verify/);
  });

  it('names a relabelled, re-timed or re-digested listing', () => {
    const k = kek();
    for (const [change, why] of [
      [(p: PointInfo) => Object.assign(p, { label: 'app-consistent' }), /label/],
      [(p: PointInfo) => Object.assign(p, { time: '2099-01-01T00:00:00.000Z' }), /time/],
      [(p: PointInfo) => Object.assign(p, { seqTo: 99 }), /sequence range/],
      [
        (p: PointInfo) => {
          (p.volumes.data as { digest: string }).digest = 'd1';
        },
        /digest of data/,
      ],
    ] as const) {
      const points = chain(k, 3);
      change(points[2] as PointInfo);
      const out = checkPoints(k, 'web', points);
      expect(out[2]?.status).toBe('bad');
      expect(out[2]?.reason).toMatch(why);
    }
  });

  it('refuses an edited record whatever the listing says', () => {
    const k = kek();
    const points = chain(k, 2);
    const p = points[0] as PointInfo;
    p.label = 'app-consistent';
    (p.record as PointRecord).label = 'app-consistent';
    expect(checkPoints(k, 'web', points)[0]?.reason).toMatch(/signature does not verify/);
  });

  it('refuses reordered points and a record spliced from another chain', () => {
    const k = kek();
    const points = chain(k, 3);
    const swapped = [points[0], points[2], points[1]] as PointInfo[];
    expect(statuses(k, swapped)).toEqual(['signed', 'signed', 'bad']);
    // A genuine record of the same key but another history (say, an older store) in place of #2.
    const spliceSource = chain(k, 2);
    const key = pointSigningKey(k, 'web');
    const r2 = { ...(spliceSource[1]?.record as PointRecord), prev: 'f'.repeat(64) };
    const spliced = { ...(spliceSource[1] as PointInfo), record: r2, sig: signRecord(key, r2).sig };
    const out = checkPoints(k, 'web', [points[0] as PointInfo, spliced, points[2] as PointInfo]);
    expect(out[1]?.status).toBe('bad');
    expect(out[1]?.reason).toMatch(/chain is broken/);
  });

  it('labels points made before signing as unsigned, and requireVerified refuses them', () => {
    const k = kek();
    const [p] = chain(k, 1);
    const { record: _r, sig: _s, ...legacy } = p as PointInfo;
    expect(checkPoints(k, 'web', [legacy])[0]).toMatchObject({ status: 'unsigned' });
    try {
      requireVerified(k, 'web', [legacy], 1);
      expect.unreachable();
    } catch (err) {
      expect(isDrError(err, 'point_unverified')).toBe(true);
      expect((err as Error).message).toMatch(
        /before points were signed.*To resolve, take a new point/,
      );
    }
  });

  it("refuses another app's records", () => {
    const k = kek();
    const points = chain(k, 1, 'db');
    expect(checkPoints(k, 'web', points)[0]?.status).toBe('bad');
  });
});
