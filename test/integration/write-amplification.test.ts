// A real agent tracing a loop device reports what its block size costs the writes, and `dr status` advises.
import { afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { loopProblem, Rig, tool } from '../helpers/loop-device.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import { skipBecause } from '../helpers/skip.js';
import { until } from '../helpers/wait-for.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let problem: string | undefined;
beforeAll(async () => {
  problem =
    (await loopProblem()) ??
    (await tool('fio', ['--version']).then(
      () => undefined,
      () => 'fio is missing (apt-get install -y fio)',
    ));
});

interface VolumeJson {
  name: string;
  writes?: { writtenBytes: number; blockSize: number; windowSeconds: number };
  writeAmplification?: number;
  blockSizeAdvice?: { blockSize: number; writeAmplification: number };
}

describe('write amplification from a traced volume', () => {
  let t: TestHome | undefined;
  let rig: Rig | undefined;
  let agent: DrProcess | undefined;

  afterEach(async () => {
    // SIGTERM first: the agent then ends its trace reader and removes its trace instance, so
    // the tracefs mounted for the test can be unmounted.
    await agent?.stop();
    agent = undefined;
    await stopAll();
    await rig?.cleanup();
    await t?.cleanup();
    rig = undefined;
    t = undefined;
  });

  it('4 KiB random writes on 64 KiB blocks show as 16x, with advice for 4 KiB blocks', async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    t = await testHome();
    rig = new Rig(t.dir);
    const tracefs = await rig.tracefs().catch((err: unknown) => {
      skipBecause(ctx, `tracefs cannot be mounted here (${String(err).split('\n')[0]})`);
      return '';
    });
    const { device } = await rig.loop('data', 128);
    expect(
      (await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${device}`])).err,
    ).toBe('');
    await t.startGateway();
    const home = t.home;
    const status = async (): Promise<VolumeJson | undefined> => {
      const r = await dr(['--home', home, 'status', 'web', '--json']);
      return r.code === 0
        ? (JSON.parse(r.out) as { volumes?: VolumeJson[] }).volumes?.find((v) => v.name === 'data')
        : undefined;
    };
    agent = startDr(['agent', '--app', 'web', '--tracker', 'trace', '--interval', '500ms'], {
      DR_HOME: home,
      DR_TRACEFS: tracefs,
      DR_LOG_LEVEL: 'warn',
    });
    // The agent traces and reports: a window with no writes yet is zero, with no advice.
    const quiet = await until(
      'the first write figures',
      async () => (await status())?.writes,
      120_000,
    );
    expect(quiet.blockSize).toBe(64 * KiB);
    // 72 MiB of 4 KiB writes at random 4 KiB-aligned offsets, past the page cache.
    await tool(
      'fio',
      [
        '--name=amp',
        `--filename=${device}`,
        '--rw=randwrite',
        '--bs=4k',
        '--direct=1',
        '--ioengine=psync',
        '--size=128M',
        '--io_size=72M',
        '--randrepeat=0',
        '--norandommap',
      ],
      300_000,
    );
    const v = await until(
      'the agent to report the 72 MiB written',
      async () => {
        const s = await status();
        return s?.writes && s.writes.writtenBytes >= 72 * MiB ? s : undefined;
      },
      180_000,
    );
    expect(v.writes?.writtenBytes).toBe(72 * MiB);
    expect(v.writeAmplification).toBeCloseTo(16, 6);
    expect(v.blockSizeAdvice).toEqual({ blockSize: 4 * KiB, writeAmplification: 1 });
    const human = await dr(['--home', home, 'status', 'web']);
    expect(human.out).toContain(
      'data: write amplification 16.0x at 64 KiB blocks (72.0 MiB written',
    );
    expect(human.out).toContain('data: advice: 4 KiB blocks would cut that to 1.0x (94% fewer');
    expect(human.out).toContain('--block-size 4KiB');
    expect(await agent.stop()).toBe(0);
  }, 600_000);
});
