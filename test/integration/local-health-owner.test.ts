// The local provider's health check counts only for its own server, not another operation's on the same port.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../core/log.js';
import { createLocalProvider } from '../../replicator/providers/local-provider.js';
import type { MaterialisedVolume, Provider } from '../../replicator/providers/provider.js';
import { freePort } from '../helpers/lifeboat-home.js';
import { killVolumeServers, volumeServerScript } from '../helpers/recovery-rig.js';
import { missingFeature } from '../helpers/skip.js';

const noProc = existsSync('/proc/net/tcp') ? undefined : 'no /proc/net/tcp (not Linux)';
const suite = 'local health check: another operation’s server does not count';

describe.skipIf(missingFeature(noProc, suite))(suite, () => {
  let dir: string | undefined;
  const launched: { provider: Provider; opId: string }[] = [];

  afterEach(async () => {
    for (const l of launched.splice(0)) await l.provider.destroy(l.opId, silentLog);
    await killVolumeServers(dir);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports a server that never answers as unhealthy while a kept drill answers on its port', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-owner-'));
    const port = await freePort();
    const image = join(dir, 'data.img');
    await writeFile(
      image,
      Buffer.concat([Buffer.from('lifeboat-marker-owner\n'), Buffer.alloc(4096)]),
    );
    const volumes: MaterialisedVolume[] = [{ name: 'data', path: image, size: 4118 }];
    const check = `http://127.0.0.1:${port}/health`;
    const serving = `exec node ${volumeServerScript} ${port} 0 ${dir}`;
    const signal = new AbortController().signal;
    const launch = async (start: string, opId: string, mode: 'drill' | 'failover') => {
      const provider = createLocalProvider({ dir: join(dir ?? '', 'recovery'), start, check });
      launched.push({ provider, opId });
      const server = await provider.launch({
        opId,
        app: 'web',
        mode,
        volumes,
        signal,
        log: silentLog,
      });
      return { provider, server };
    };

    const drill = await launch(serving, 'op-drill1', 'drill');
    expect((await drill.provider.health(drill.server, { timeoutMs: 60_000, signal })).ok).toBe(
      true,
    );

    // Up, but never listening: only the drill's server answers the check.
    const silent = await launch(`exec sleep 600 # ${dir}`, 'op-failover1', 'failover');
    const h = await silent.provider.health(silent.server, { timeoutMs: 3000, signal });
    expect(h.ok).toBe(false);
    expect(h.output).toContain(
      `${check} was answered by the server of op-drill1 (pid ${drill.server.details.pid}), not by this one`,
    );

    // Once the drill's server is gone, a server of its own on that port passes.
    await drill.provider.destroy('op-drill1', silentLog);
    const own = await launch(serving, 'op-failover2', 'failover');
    const ok = await own.provider.health(own.server, { timeoutMs: 60_000, signal });
    expect(ok.output).toContain('volume says lifeboat-marker-owner');
    expect(ok.ok).toBe(true);
  }, 120_000);
});
