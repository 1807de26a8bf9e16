/** The agent's chain of signed points: the head it follows, each next record, and what it refuses. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { PointChain } from '../../../../replicator/agent/point-chain.js';
import { recordHash } from '../../../../replicator/crypto/point-record.js';
import type { PointInfo, SessionResponse } from '../../../../replicator/transport/wire-types.js';
import { pointOf, recordingLog, tempDir, testKek } from './agent-fixture.js';

const VOLUMES = { data: { size: 4096, digest: 'ab'.repeat(32) } };

function session(latest: PointInfo | null, storeId = 'store-1', committedSeq = 0): SessionResponse {
  return {
    sessionId: 's1',
    storeId,
    volumes: [],
    committedSeq,
    lastSeq: committedSeq,
    pendingSeqs: [],
    latestPoint: latest,
    serverTime: Date.now(),
  };
}

async function refused(p: Promise<unknown>): Promise<DrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DrError);
  return err as DrError;
}

describe('PointChain', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const kek = testKek();
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  /** A chain that committed points 1 and 2 (2 at `t2`), and the gateway's listing of them. */
  async function twoPoints(t2 = Date.parse('2026-12-07T04:00:02.000Z')) {
    const chain = new PointChain('web', kek, dir, silentLog);
    await chain.adopt(session(null));
    const one = chain.next({ timeMs: t2 - 1000, label: 'fuzzy', upToSeq: 3, volumes: VOLUMES });
    await chain.committed(one.record, 'store-1', Date.now());
    const two = chain.next({ timeMs: t2, label: 'crash-consistent', upToSeq: 5, volumes: VOLUMES });
    await chain.committed(two.record, 'store-1', Date.now());
    return { chain, one, two };
  }

  it('starts a chain: point 1 follows nothing and covers the batches from the first', async () => {
    const chain = new PointChain('web', kek, dir, silentLog);
    await chain.adopt(session(null));
    expect(chain.head).toBeUndefined();
    const { record } = chain.next({ timeMs: 0, label: 'fuzzy', upToSeq: 4, volumes: VOLUMES });
    expect(record).toMatchObject({ v: 1, app: 'web', id: 1, seqFrom: 1, seqTo: 4, prev: null });
  });

  it('names the previous point’s hash and continues its sequence range; the ledger says so', async () => {
    const { chain, one, two } = await twoPoints();
    expect(two.record).toMatchObject({ id: 2, seqFrom: 4, seqTo: 5, prev: recordHash(one.record) });
    expect(chain.committedSeq).toBe(5);
    const ledger = JSON.parse(await readFile(join(dir, 'last-point.json'), 'utf8'));
    expect(ledger).toMatchObject({ storeId: 'store-1', id: 2, hash: recordHash(two.record) });
  });

  it('never dates a point before the previous one, however the clock offset moved', async () => {
    const t2 = Date.parse('2026-12-07T04:00:02.000Z');
    const { chain } = await twoPoints(t2);
    const next = chain.next({ timeMs: t2 - 500, label: 'fuzzy', upToSeq: 6, volumes: VOLUMES });
    expect(next.record.time).toBe('2026-12-07T04:00:02.000Z');
  });

  it('adopts the gateway’s latest point when it is the one this agent committed', async () => {
    const { two } = await twoPoints();
    const restarted = new PointChain('web', kek, dir, silentLog);
    await restarted.adopt(session(pointOf(two), 'store-1', 5));
    expect(restarted.head?.id).toBe(2);
    expect(restarted.ledger?.id).toBe(2);
    expect(
      restarted.next({ timeMs: 0, label: 'fuzzy', upToSeq: 7, volumes: VOLUMES }).record.prev,
    ).toBe(recordHash(two.record));
  });

  it('refuses a gateway that rolled back to an older point', async () => {
    const { one } = await twoPoints();
    const restarted = new PointChain('web', kek, dir, silentLog);
    const err = await refused(restarted.adopt(session(pointOf(one), 'store-1', 3)));
    expect(err.code).toBe('point_unverified');
    expect(err.message).toMatch(/latest point of web is #1, but this agent committed #2/);
    expect(err.remedy).toMatch(/last-point\.json aside/);
  });

  it('refuses a gateway that holds no point at all after this agent committed some', async () => {
    await twoPoints();
    const err = await refused(new PointChain('web', kek, dir, silentLog).adopt(session(null)));
    expect(err.message).toMatch(/is none, but this agent committed #2/);
  });

  it('refuses a latest point whose signature does not verify', async () => {
    const { two } = await twoPoints();
    const forged = pointOf(two);
    forged.label = 'app-consistent';
    if (forged.record) forged.record = { ...forged.record, label: 'app-consistent' };
    const err = await refused(
      new PointChain('web', kek, dir, silentLog).adopt(session(forged, 'store-1', 5)),
    );
    expect(err.message).toMatch(/latest point 2 of web does not verify: .*signature/);
  });

  it('refuses a point signed by this agent that is not the one it committed (a fork)', async () => {
    const { two } = await twoPoints();
    // The ledger remembers another point #2 than the gateway holds.
    const ledgerPath = join(dir, 'last-point.json');
    const ledger = JSON.parse(await readFile(ledgerPath, 'utf8'));
    await writeFile(ledgerPath, JSON.stringify({ ...ledger, hash: 'cd'.repeat(32) }));
    const err = await refused(
      new PointChain('web', kek, dir, silentLog).adopt(session(pointOf(two), 'store-1', 5)),
    );
    expect(err.message).toMatch(
      /point #2 of web is not the one this agent committed: the history forked/,
    );
  });

  it('starts again, with a warning, on a gateway store that was replaced', async () => {
    await twoPoints();
    const { log, warnings } = recordingLog();
    const chain = new PointChain('web', kek, dir, log);
    await chain.adopt(session(null, 'store-2'));
    expect(chain.head).toBeUndefined();
    expect(warnings).toEqual([
      'the gateway store was replaced since this agent last committed; its chain starts again there',
    ]);
  });
});
