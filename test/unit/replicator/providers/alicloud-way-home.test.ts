import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import {
  type AlicloudOptions,
  createAlicloudProvider,
} from '../../../../replicator/providers/alicloud-provider.js';
import type { Launched, WayHomeRequest } from '../../../../replicator/providers/provider.js';
import { type EcsEmulator, startEcsEmulator } from '../../../fakes/ecs-emulator.js';
import { emulatedSite } from '../../../helpers/ecs-site.js';

const SIZE = 256 * 1024;
/**
 * Stands in for `dr` on the instance: says a point was cut (the start script waits for that),
 * then runs until killed; with --once it ends at once, as a last cut does.
 */
const fakeAgent = `sh -c 'echo "args: $*"; echo "{\\"point\\":1}"; case " $* " in *" --once "*) echo "point 2 committed"; exit 0;; esac; exec sleep 120' sh`;

describe('the way home from ECS: the agent on the recovered instance (Cloud Assistant)', () => {
  let dir: string;
  let home: string;
  let emu: EcsEmulator;
  let keyId: string;
  let secret: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-way-home-'));
    home = join(dir, 'guest-home');
    await mkdir(home);
    await writeFile(join(home, 'dr.yaml'), 'apps: {}\n');
    keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    secret = randomBytes(22).toString('base64url');
    emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: dir });
  });
  afterEach(async () => {
    const pid = Number(await readFile(join(home, 'way-home-web.pid'), 'utf8').catch(() => '0')); // none left
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // it ended by itself meanwhile
      }
    }
    await emu.close();
    await rm(dir, { recursive: true, force: true });
  });

  function options(over: Partial<AlicloudOptions> = {}): AlicloudOptions {
    return {
      ...emulatedSite(emu),
      accessKeyId: keyId,
      accessKeySecret: secret,
      attachPoll: 20,
      bootCheck: 'off',
      agentHome: home,
      agentCommand: fakeAgent,
      ...over,
    };
  }

  /** A failover into the emulated region: the instance the way home starts from. */
  async function failedOver(o: AlicloudOptions): Promise<WayHomeRequest> {
    const path = join(dir, 'data.img');
    await writeFile(path, randomBytes(SIZE));
    const server: Launched = await createAlicloudProvider(o).launch({
      opId: 'op-failover1',
      app: 'web',
      mode: 'failover',
      volumes: [{ name: 'data', path, size: SIZE }],
      signal: new AbortController().signal,
      log: silentLog,
    });
    return {
      failoverOpId: 'op-failover1',
      server,
      app: 'web',
      volumes: [{ name: 'data', size: SIZE }],
      signal: new AbortController().signal,
      log: silentLog,
    };
  }

  const failure = (p: Promise<unknown>) =>
    p.then(
      () => new Error('expected a failure'),
      (e: unknown) => e as Error,
    );

  it('starts the agent once, cuts last, stops the instance and starts it again', async () => {
    const o = options();
    const req = await failedOver(o);
    const provider = createAlicloudProvider(o);
    const wayHome = provider.wayHome;
    if (!wayHome) throw new Error('the alicloud provider has a way home');
    expect(await wayHome.start(req)).toMatch(/^the way-home agent runs: pid \d+$/);
    const pid = Number(await readFile(join(home, 'way-home-web.pid'), 'utf8'));
    // The script found the instance's disk by its serial and gave the agent the volume's size.
    const log = await readFile(join(home, 'way-home-web.log'), 'utf8');
    expect(log).toContain('"point"');
    expect(log).toMatch(
      new RegExp(
        `args: agent --app web --reverse --volume data=${emu.byIdDir}/virtio-\\w+ --size data=${SIZE}`,
      ),
    );
    expect(await wayHome.start(req)).toBe(`the way-home agent already runs: pid ${pid}`);

    expect(await wayHome.finalCut(req)).toContain('point 2 committed');
    await expect(stat(join(home, 'way-home-web.pid'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => process.kill(pid, 0)).toThrow(); // the running agent was stopped first

    expect(await provider.stop?.('op-failover1', silentLog)).toBe(true);
    expect(emu.state.instances.get(req.server.id)?.status).toBe('Stopped');
    await wayHome.restart('op-failover1', silentLog);
    expect(emu.state.instances.get(req.server.id)?.status).toBe('Running');
  });

  it('fails with the output when the agent exits at once, or the instance has no DR_HOME', async () => {
    const req = await failedOver(options({ agentCommand: 'false' }));
    const quits = await failure(
      createAlicloudProvider(options({ agentCommand: 'false' })).wayHome?.start(req) ??
        Promise.resolve(),
    );
    expect(isDrError(quits, 'provider_failed')).toBe(true);
    expect(quits.message).toMatch(
      /^the command lifeboat-way-home-web on i-\w+ ended Failed \(ExitCodeNonzero: the command exited with 6\); last output: /,
    );
    const noHome = await failure(
      createAlicloudProvider(options({ agentHome: join(dir, 'nowhere') })).wayHome?.start(req) ??
        Promise.resolve(),
    );
    expect(noHome.message).toContain(
      `exited with 7); last output: no Lifeboat home at ${join(dir, 'nowhere')} on this instance (no dr.yaml there)`,
    );
  });

  it('says what to do when the Cloud Assistant client does not run on the instance', async () => {
    const o = options();
    const req = await failedOver(o);
    emu.state.assistantOffline.add(req.server.id);
    const err = await failure(createAlicloudProvider(o).wayHome?.start(req) ?? Promise.resolve());
    expect(err.message).toContain('ended Failed (ClientNotRunning');
    expect(err.message).toContain(
      'To resolve, start the Cloud Assistant client on the instance (aliyun-service)',
    );
  });
});
