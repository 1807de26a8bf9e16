/** Checks recovery points against the agent's signed records and their chain before anything reads them. */
import { DrError } from '../../core/errors.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  type PointRecord,
  pointRecordSchema,
  pointSigningKey,
  recordHash,
  signatureSchema,
  signatureValid,
} from '../crypto/point-record.js';
import { volumeKeysOf } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail, PointInfo, VolumeInfo } from '../transport/wire-types.js';

/** One point's standing: its record verifies (`signed`), it predates signing, or it does not verify. */
export interface PointTrust {
  id: number;
  status: 'signed' | 'unsigned' | 'bad';
  /** What is wrong, for `unsigned` and `bad`. */
  reason?: string;
}

const UNSIGNED = 'it was made before points were signed, so it cannot be authenticated';

/** Checks one point's record and signature, and that the gateway's listing says what the record says. */
export function checkRecord(key: Buffer, app: string, p: PointInfo): PointTrust {
  const bad = (reason: string): PointTrust => ({ id: p.id, status: 'bad', reason });
  if (p.record === undefined && p.sig === undefined)
    return { id: p.id, status: 'unsigned', reason: UNSIGNED };
  const parsed = pointRecordSchema.safeParse(p.record);
  if (!parsed.success || !signatureSchema.safeParse(p.sig).success)
    return bad('its signed record is malformed or missing its signature');
  const r = parsed.data as PointRecord;
  if (!signatureValid(key, r, p.sig as string))
    return bad("its record's signature does not verify: it was forged or altered at the gateway");
  if (r.app !== app) return bad(`its record belongs to app ${r.app}`);
  if (r.id !== p.id) return bad(`the gateway lists it as point ${p.id}, its record says ${r.id}`);
  const differs: string[] = [];
  if (r.time !== p.time) differs.push(`time (listed ${p.time}, signed ${r.time})`);
  if (r.label !== p.label) differs.push(`label (listed ${p.label}, signed ${r.label})`);
  if (r.seqTo !== p.seqTo)
    differs.push(`sequence range (listed up to ${p.seqTo}, signed ${r.seqTo})`);
  const names = new Set([...Object.keys(r.volumes), ...Object.keys(p.volumes)]);
  for (const name of [...names].sort()) {
    const s = r.volumes[name];
    const l = p.volumes[name];
    if (!s || !l) differs.push(`volume ${name} (${s ? 'not listed' : 'not signed'})`);
    else if (s.size !== l.size)
      differs.push(`size of ${name} (listed ${l.size}, signed ${s.size})`);
    else if (s.digest !== l.digest) differs.push(`digest of ${name}`);
  }
  if (differs.length > 0)
    return bad(`the gateway's listing differs from its signed record in ${differs.join(', ')}`);
  return { id: p.id, status: 'signed' };
}

/**
 * Checks every point (oldest first, as the gateway lists them) and the chain between
 * neighbours: ids, times and sequence ranges only move forward, and a point whose
 * predecessor is still held names that predecessor's record hash. Points dropped by
 * retention leave gaps in the ids; the chain is checked across every link still held.
 */
export function checkPoints(kek: KeyEncryptionKey, app: string, points: readonly PointInfo[]) {
  const key = pointSigningKey(kek, app);
  const out: PointTrust[] = [];
  let before: { p: PointInfo; r: PointRecord } | undefined;
  for (const p of points) {
    let trust = checkRecord(key, app, p);
    if (trust.status === 'signed') {
      const r = p.record as PointRecord;
      const link = chainProblem(before, r);
      if (link) trust = { id: p.id, status: 'bad', reason: link };
      before = { p, r };
    } else if (trust.status === 'bad') before = undefined;
    out.push(trust);
  }
  return out;
}

function chainProblem(
  before: { p: PointInfo; r: PointRecord } | undefined,
  r: PointRecord,
): string | undefined {
  if (!before)
    return r.id === 1 && r.prev !== null ? 'the first point names a predecessor' : undefined;
  const q = before.r;
  if (r.id <= q.id) return `it is listed after point ${q.id} but its record says ${r.id}`;
  if (Date.parse(r.time) < Date.parse(q.time)) return `its time is before point ${q.id}'s`;
  if (r.seqFrom <= q.seqTo && r.seqFrom <= r.seqTo)
    return `its sequence range overlaps point ${q.id}'s`;
  if (r.id === q.id + 1 && r.prev !== recordHash(q))
    return `the chain is broken: its record does not follow point ${q.id}'s record`;
  return undefined;
}

/**
 * Throws unless point `id` verifies within the listing (its record, its signature and its link
 * to the point before it); the error names what is wrong.
 */
export function requireVerified(
  kek: KeyEncryptionKey,
  app: string,
  points: readonly PointInfo[],
  id: number,
): void {
  const upTo = points.filter((p) => p.id <= id);
  const trust = checkPoints(kek, app, upTo).find((t) => t.id === id);
  if (!trust) {
    throw new DrError(`app ${app} has no recovery point ${id}`, {
      code: 'point_unknown',
      subject: `${app}/${id}`,
      remedy: `list points with \`dr points ${app}\``,
    });
  }
  if (trust.status === 'signed') return;
  throw pointRefusal(app, trust);
}

/** The refusal for a point that does not verify, naming why and the way on. */
export function pointRefusal(app: string, trust: PointTrust): DrError {
  return new DrError(`point ${trust.id} of ${app} is refused: ${trust.reason}`, {
    code: 'point_unverified',
    subject: `${app}/${trust.id}`,
    remedy:
      trust.status === 'unsigned'
        ? `take a new point with \`dr agent --app ${app} --once\` (agents sign every point now) and use that one`
        : `use another point (\`dr points ${app}\` marks those that verify) and check the gateway store for tampering`,
  });
}

/**
 * A point's detail, fetched only after the point verified within the gateway's listing
 * (record, signature, link to its predecessor); the detail must carry the same signed record.
 */
export async function trustedPoint(
  client: GatewayClient,
  kek: KeyEncryptionKey,
  app: string,
  ref: number | 'latest',
): Promise<PointDetail> {
  const points = await client.points(app);
  const id = ref === 'latest' ? points.at(-1)?.id : ref;
  if (id === undefined) return client.point(app, 'latest'); // none yet: the gateway says so, with its remedy
  const detail = await client.point(app, id);
  for (const info of detail.volumeInfo) volumeKeysOf(kek, app, info); // the wrong KEK, by name
  requireVerified(kek, app, points, id);
  const listed = points.find((p) => p.id === id) as PointInfo;
  requireSignedRecord(kek, app, detail);
  if (detail.sig !== listed.sig)
    throw pointRefusal(app, {
      id,
      status: 'bad',
      reason: 'the gateway answered with another record than it lists',
    });
  return detail;
}

/**
 * Throws unless the point's own record verifies: the check every reader of a point makes first.
 * A key encryption key from another home is named as such first (the wrapped data keys say so),
 * not reported as a forged record.
 */
export function requireSignedRecord(
  kek: KeyEncryptionKey,
  app: string,
  point: PointInfo & { volumeInfo?: VolumeInfo[] },
): void {
  for (const info of point.volumeInfo ?? []) volumeKeysOf(kek, app, info);
  const trust = checkRecord(pointSigningKey(kek, app), app, point);
  if (trust.status !== 'signed') throw pointRefusal(app, trust);
}
