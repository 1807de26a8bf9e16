/** Probes 2 and 3 of issue 15: forged, relabelled, rolled-back and withheld points are refused or shown. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../replicator/gateway/gateway-server.js';
import { writePointIndex } from '../../../replicator/gateway/point-index.js';
import type { AppStatus, PointInfo } from '../../../replicator/transport/wire-types.js';
import { gatewayRequest } from '../../helpers/gateway-request.js';
import { dr, scribble, type TestHome, testHome, writeImage } from '../../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
type Listed = PointInfo & { check: string; checkReason?: string };

describe('recovery points the gateway cannot forge, relabel or roll back (probes 2 and 3)', () => {
  let t: TestHome;
  let g: Gateway;
  let img: string;
  const appDir = () => join(t.home, 'store', 'apps', 'web');
  const catalogPath = () => join(appDir(), 'catalog.json');
  const points = async () => {
    const r = await dr(['--home', t.home, 'points', 'web', '--json'], quiet);
    return { code: r.code, list: JSON.parse(r.out) as Listed[] };
  };
  const restore = (point: string, to: string) =>
    dr(['--home', t.home, 'restore', 'web', '--point', point, '--volume', 'a', '--to', to], quiet);
  /** Edits the catalog with the gateway stopped, as someone with write access to its store would. */
  const tamper = async (edit: (catalog: { points: PointInfo[] }) => Promise<void> | void) => {
    await g.close();
    const catalog = JSON.parse(await readFile(catalogPath(), 'utf8'));
    await edit(catalog);
    await writeFile(catalogPath(), JSON.stringify(catalog));
    g = await t.startGateway();
  };

  beforeEach(async () => {
    t = await testHome();
    img = join(t.dir, 'a.img');
    await writeImage(img, 512 * 1024, 1);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    g = await t.startGateway();
    for (let i = 0; i < 2; i++) {
      if (i) await scribble(img, 4);
      expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    }
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('signs every point: dr points verifies the records and the chain', async () => {
    const { code, list } = await points();
    expect(code).toBe(0);
    expect(list.map((p) => [p.id, p.check])).toEqual([
      [1, 'signed'],
      [2, 'signed'],
    ]);
    expect(list[1]?.record?.prev).toMatch(/^[0-9a-f]{64}$/);
    const ok = await dr(['--home', t.home, 'verify', 'web', '--point', '2'], quiet);
    expect(ok.out).toContain('verify: ok');
  });

  it('refuses a forged commit and a commit for batches never received (probe 2)', async () => {
    const send = (method: string, path: string, body?: unknown) =>
      gatewayRequest(t.home, g.address, method, path, body);
    const listed = (await points()).list;
    const last = listed[1] as Listed;
    const session = await send('POST', '/v1/apps/web/session', {
      agentId: 'evil',
      host: 'evil',
      pid: 1,
      volumes: [],
    });
    expect(session.status).toBe(200);
    const sessionId = JSON.parse(session.body).sessionId as string;
    // The old form, without a signed record: refused.
    const unsigned = await send('POST', '/v1/apps/web/points', {
      sessionId,
      upToSeq: last.seqTo,
      label: 'app-consistent',
      time: '2099-01-01T00:00:00Z',
      volumes: { a: { size: 512 * 1024, digest: 'x' } },
    });
    expect(unsigned.status).toBe(400);
    expect(JSON.parse(unsigned.body).error.message).toMatch(/signed record/);
    const record = {
      v: 1,
      app: 'web',
      id: 3,
      seqFrom: last.seqTo + 1,
      seqTo: last.seqTo,
      time: '2099-01-01T00:00:00.000Z',
      label: 'app-consistent',
      volumes: { a: { size: 512 * 1024, digest: 'x' } },
      prev: null,
    };
    // Far beyond what was received: refused, whatever the signature.
    const beyond = await send('POST', '/v1/apps/web/points', {
      sessionId,
      record: { ...record, seqTo: 1e15 },
      sig: 'a'.repeat(64),
    });
    expect(beyond.status).toBe(400);
    expect(JSON.parse(beyond.body).error.message).toMatch(/received only up to/);
    // A record the gateway cannot tell from a real one (it holds no key): it lists it...
    const forged = await send('POST', '/v1/apps/web/points', {
      sessionId,
      record,
      sig: 'a'.repeat(64),
    });
    expect(forged.status).toBe(200);
    await send('DELETE', `/v1/apps/web/session?id=${sessionId}`);
    // ...but every reader holding the key refuses it, naming why.
    const after = await points();
    expect(after.code).toBe(1);
    expect(after.list[2]).toMatchObject({ id: 3, check: 'bad' });
    expect(after.list[2]?.checkReason).toMatch(/signature does not verify/);
    const r = await restore('latest', join(t.dir, 'x.img'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/point 3 of web is refused: .*signature does not verify/);
    const v = await dr(['--home', t.home, 'verify', 'web', '--point', '3'], quiet);
    expect(v.code).toBe(1);
    expect(v.out).not.toContain('verify: ok');
    // The agent does not build on it either: it stops, saying why.
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(agent.code).not.toBe(0);
    expect(agent.err).toMatch(/latest point 3 of web does not verify/);
  });

  it('refuses a rolled-back or relabelled point in the store, and verify does not pass it (probe 3)', async () => {
    const first = join(t.dir, 'p1.img');
    expect((await restore('1', first)).code).toBe(0);
    await tamper(async (c) => {
      const [p1, p2] = c.points as [PointInfo, PointInfo];
      (p2.volumes.a as { digest: string }).digest = (p1.volumes.a as { digest: string }).digest;
      await writePointIndex(join(appDir(), 'points', '2.idx'), 2, []);
    });
    const r = await restore('2', join(t.dir, 'p2.img'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/point 2 of web is refused: .*digest of a/);
    const v = await dr(['--home', t.home, 'verify', 'web', '--point', '2'], quiet);
    expect(v.code).toBe(1);
    expect(v.out).toMatch(/MISMATCH web: point 2 of web is refused/);

    await tamper((c) => {
      const p1 = c.points[0] as PointInfo;
      p1.label = 'app-consistent';
    });
    const relabelled = await restore('1', join(t.dir, 'p1b.img'));
    expect(relabelled.err).toMatch(
      /point 1 of web is refused: .*label \(listed app-consistent, signed fuzzy\)/,
    );
    await tamper((c) => {
      const p1 = c.points[0] as PointInfo;
      (p1.record as { label: string }).label = 'app-consistent';
    });
    const both = await restore('1', join(t.dir, 'p1c.img'));
    expect(both.err).toMatch(/point 1 of web is refused: .*signature does not verify/);
  });

  it('shows the agent ahead of a gateway that rolled back or withholds points', async () => {
    await tamper((c) => {
      c.points = c.points.slice(0, 1);
    });
    const status = JSON.parse(
      (await dr(['--home', t.home, 'status', 'web', '--json'], quiet)).out,
    ) as AppStatus;
    expect(status.lastPoint?.id).toBe(1);
    expect(status.agentLastPoint?.id).toBe(2);
    const text = await dr(['--home', t.home, 'status', 'web'], quiet);
    expect(text.out).toMatch(/the agent committed point #2 .* but the gateway's latest is #1/);
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(agent.code).not.toBe(0);
    expect(agent.err).toMatch(/latest point of web is #1, but this agent committed #2/);
  });
});
