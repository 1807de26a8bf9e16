/** Probe 1 of issue 15: names in gateway routes are decoded, checked once, and never reach a path. */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../replicator/gateway/gateway-server.js';
import type { AppStatus } from '../../../replicator/transport/wire-types.js';
import { gatewayRequest } from '../../helpers/gateway-request.js';
import { dr, type TestHome, testHome, writeImage } from '../../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

/** Every path under `dir`, relative to it. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

describe('gateway names (probe 1): traversal, malformed escapes, status of unknown apps', () => {
  let t: TestHome;
  let g: Gateway;
  beforeEach(async () => {
    t = await testHome();
    const img = join(t.dir, 'a.img');
    await writeImage(img, 256 * 1024, 1);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    g = await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('answers 400 to every traversal and malformed name, and writes nothing outside DR_HOME', async () => {
    const outside = (await tree(t.dir)).filter((p) => !p.startsWith('home'));
    const send = (method: string, path: string, body?: unknown) =>
      gatewayRequest(t.home, g.address, method, path, body);
    // From <home>/store/apps/<app>, three levels up is the test dir, outside DR_HOME.
    const evil = '..%2F..%2F..%2Fescaped';
    const probes: Array<[string, string, unknown?]> = [
      ['POST', `/v1/apps/${evil}/protection`, { state: 'failed-over', opId: 'op-evil' }],
      ['POST', `/v1/apps/..%2F..%2F..%2F..%2F..%2Ftmp%2Fx/protection`, { state: 'failed-over' }],
      ['GET', `/v1/apps/${evil}/protection`],
      ['POST', `/v1/apps/${evil}/session`, { agentId: 'x', host: 'h', pid: 1, volumes: [] }],
      ['POST', `/v1/apps/${evil}/heartbeat`, { sessionId: 's' }],
      ['GET', `/v1/apps/${evil}/points`],
      ['GET', '/v1/apps/web/points/..%2F1'],
      ['GET', '/v1/apps/web/points/1/volumes/..%2Fa/records'],
      ['GET', '/v1/apps/web/points/0/volumes/a/macs'],
      ['GET', '/v1/apps/Web/points'],
      ['GET', '/v1/apps/web%00/points'],
      ['GET', '/v1/apps/%E0%A4%A/points'],
      ['GET', '/v1/apps/web/points/%zz'],
      ['GET', '/v1/status?app=../../etc'],
      [
        'POST',
        '/v1/apps/web/session',
        { agentId: 'x', host: 'h', pid: 1, volumes: [{ name: '../a', size: 1, blockSize: 4096 }] },
      ],
    ];
    for (const [method, path, body] of probes) {
      const r = await send(method, path, body);
      expect({ method, path, status: r.status }).toEqual({ method, path, status: 400 });
      const err = JSON.parse(r.body).error as { code: string; message: string };
      expect(err.code).toBe('bad_request');
      expect(err.message).not.toContain('\n');
    }
    expect((await tree(t.dir)).filter((p) => !p.startsWith('home'))).toEqual(outside);
    const apps = await tree(join(t.home, 'store', 'apps'));
    expect(apps.filter((p) => !p.startsWith('web'))).toEqual([]);
  });

  it('leaves no state behind for an app it was only asked about', async () => {
    const send = (method: string, path: string, body?: unknown) =>
      gatewayRequest(t.home, g.address, method, path, body);
    expect((await send('GET', '/v1/status?app=ghost')).body).toBe('[]');
    expect((await send('GET', '/v1/apps/ghost/protection')).status).toBe(200);
    expect((await send('POST', '/v1/apps/ghost/heartbeat', { sessionId: 's' })).status).toBe(409);
    expect((await send('DELETE', '/v1/apps/ghost/session?id=s')).status).toBe(200);
    expect(
      (await send('POST', '/v1/apps/ghost/protection', { state: 'failed-over', opId: 'op-x1234' }))
        .status,
    ).toBe(404);
    const all = JSON.parse((await send('GET', '/v1/status')).body) as AppStatus[];
    expect(all.map((s) => s.app)).toEqual(['web']);
    expect(g.statuses().map((s) => s.app)).toEqual(['web']);
    expect(await readdir(join(t.home, 'store', 'apps'))).toEqual(['web']);
  });

  it('refuses bad names on the command line with one line and a remedy', async () => {
    for (const args of [
      ['points', '../../etc'],
      ['status', 'Web'],
      ['verify', 'a/b'],
      ['restore', 'web', '--point', '0', '--volume', 'a', '--to', join(t.dir, 'x.img')],
      ['restore', 'web', '--point', '1', '--volume', '../a', '--to', join(t.dir, 'x.img')],
      ['cancel', 'op-../../x'],
    ]) {
      const r = await dr(['--home', t.home, ...args], quiet);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(/not a valid|not a point id/);
    }
  });
});
