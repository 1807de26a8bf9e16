import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AppStatus, PointInfo } from '../../replicator/transport/wire-types.js';
import { startCeph, stopCeph, type TestCeph } from '../helpers/ceph-s3.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { Rig } from '../helpers/loop-device.js';
import { type DrProcess, startDr } from '../helpers/processes.js';
import { startRedis, type TestRedis } from '../helpers/redis-server.js';
import { FaultProxy } from './fault-proxy.js';

const execFileP = promisify(execFile);
const writerScript = fileURLToPath(new URL('../fixtures/record-pair-writer.mjs', import.meta.url));

export const APP = 'web';
export const RECORDS_FILE = 'records.log';
const BUCKET = 'lifeboat-chaos';

export interface ChaosRigOptions {
  /** Size of each of the app's two volumes. */
  volumeMiB: number;
  /** Records per second the writer appends to each volume. */
  rate: number;
  /** The agent's cycle interval. */
  intervalMs: number;
  /** Size of the gateway's store file system (filled on purpose by the disk-full fault). */
  storeMiB: number;
  /** Draws the proxy's jitter. */
  random: () => number;
  /**
   * `loop`: ext4 on loop devices, block tracing, fsfreeze (needs root).
   * `image`: raw image files the writer writes records into directly, the
   * scan tracker, and quiesce hooks that stop the writer (needs nothing).
   */
  volumes: 'loop' | 'image';
  /** `s3`: the gateway's store is a bucket on a Ceph RGW this rig starts; its local log stays on the store's file system. */
  store?: 's3';
}

export interface ChaosVolume {
  name: string;
  /** What the app protects: the loop device, or the image file itself. */
  device: string;
  image: string;
  /** Where the ext4 is mounted (loop volumes only). */
  mount?: string;
}

/** A stopped writer's next records wait out any cut that began before its pid was known. */
const WRITER_SETTLE_MS = 3000;

/**
 * The system under fire, all real processes on this machine: an app with two
 * ext4 volumes on loop devices written by one record writer, the agent
 * (continuous, block tracing, fsfreeze across both volumes) talking to the
 * gateway through a fault proxy, the gateway on its own small file system,
 * and Redis receiving the gateway's replication state.
 */
export class ChaosRig {
  agent: DrProcess | undefined;
  gateway: DrProcess | undefined;
  writer: ChildProcess | undefined;
  redis: TestRedis | undefined;
  /** Every agent process started, in order (their logs are the acknowledged points and resync reports). */
  readonly agents: DrProcess[] = [];
  /** Every gateway process started, in order. */
  readonly gateways: DrProcess[] = [];
  /** Every pid this rig started, to find leaked processes and trace instances by. */
  readonly pids = new Set<number>();
  private ballast: string | undefined;
  /** The Ceph endpoint under an object store run. */
  ceph: TestCeph | undefined;
  private cephDir: string | undefined;

  private constructor(
    readonly t: TestHome,
    readonly rig: Rig,
    readonly opts: ChaosRigOptions,
    readonly volumes: ChaosVolume[],
    /** Where trace instances live (loop volumes only). */
    readonly tracefs: string | undefined,
    readonly storeMount: string,
    private readonly pidfile: string,
    readonly proxy: FaultProxy,
    readonly redisPort: number,
    /** Environment every process of this run carries: a marker to find leaks by, and its own TMPDIR. */
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(opts: ChaosRigOptions): Promise<ChaosRig> {
    const t = await testHome();
    const rig = new Rig(t.dir);
    let cephDir: string | undefined;
    try {
      const loop = opts.volumes === 'loop';
      const tracefs = loop ? await rig.tracefs() : undefined;
      const volumes: ChaosVolume[] = [];
      for (const name of ['alpha', 'beta']) {
        if (loop) {
          const v = await rig.loop(name, opts.volumeMiB, true);
          volumes.push({ name, device: v.device, image: v.image, mount: v.mount as string });
        } else {
          const image = join(t.dir, `${name}.img`);
          await writeFile(image, '');
          await truncate(image, opts.volumeMiB * 1024 * 1024);
          volumes.push({ name, device: image, image });
        }
      }
      const storeMount = loop
        ? ((await rig.loop('store', opts.storeMiB, true)).mount as string)
        : join(t.dir, 'store-dir');
      const tmp = join(t.dir, 'tmp');
      await mkdir(tmp);
      const pidfile = join(t.dir, 'writer.pid');
      const quiesce = loop
        ? volumes.flatMap((v) => ['--fsfreeze', v.mount as string])
        : [
            '--quiesce-freeze',
            `kill -STOP $(cat ${pidfile}) 2>/dev/null || true`,
            '--quiesce-thaw',
            `kill -CONT $(cat ${pidfile}) 2>/dev/null || true`,
          ];
      const added = await dr([
        '--home',
        t.home,
        'app',
        'add',
        APP,
        ...volumes.flatMap((v) => ['--volume', `${v.name}=${v.device}`]),
        ...quiesce,
      ]);
      if (added.code !== 0) throw new Error(`dr app add failed: ${added.err}`);
      await updateConfig(t.home, (doc) => {
        doc.setIn(['gateway', 'store'], join(storeMount, 'store'));
        doc.setIn(['gateway', 'minFreeSpace'], '4MiB');
      });
      let ceph: TestCeph | undefined;
      if (opts.store === 's3') {
        // Outside the run's folder: Ceph's own files are no leak of the system under test.
        cephDir = await mkdtemp(join(tmpdir(), 'lifeboat-chaos-ceph-'));
        ceph = await startCeph(cephDir);
        await ceph.createBucket(BUCKET);
        // The gateway's local log goes where the folder store would be (the disk-full faults fill it).
        await mkdir(join(storeMount, 'store'));
        await symlink(join(storeMount, 'store'), join(t.home, 'store'));
        await updateConfig(t.home, (doc) => doc.setIn(['gateway', 'store'], `s3://${BUCKET}/run`));
      }
      const config = await t.config();
      const proxy = await FaultProxy.start({ target: config.gateway.address, random: opts.random });
      const env: NodeJS.ProcessEnv = { DR_HOME: t.home, TMPDIR: tmp, LIFEBOAT_CHAOS: t.dir };
      if (tracefs) env.DR_TRACEFS = tracefs;
      const made = new ChaosRig(
        t,
        rig,
        opts,
        volumes,
        tracefs,
        storeMount,
        pidfile,
        proxy,
        await freePort(),
        env,
      );
      made.ceph = ceph;
      made.cephDir = cephDir;
      return made;
    } catch (err) {
      if (cephDir) {
        await stopCeph(cephDir);
        await rm(cephDir, { recursive: true, force: true });
      }
      await rig.cleanup();
      await t.cleanup();
      throw err;
    }
  }

  get redisUrl(): string {
    return `redis://127.0.0.1:${this.redisPort}`;
  }

  async startRedis(): Promise<void> {
    this.redis = await startRedis(this.redisPort);
  }

  async killRedis(): Promise<void> {
    await this.redis?.kill9();
    this.redis = undefined;
  }

  async startGateway(): Promise<void> {
    const g = startDr(['gateway'], {
      ...this.env,
      ...this.ceph?.env,
      REDIS_URL: this.redisUrl,
    });
    if (g.child.pid) this.pids.add(g.child.pid);
    this.gateway = g;
    this.gateways.push(g);
    await g.waitFor(/publishing replication state to Redis/, 60_000);
  }

  async killGateway(): Promise<void> {
    await this.gateway?.kill9();
    this.gateway = undefined;
  }

  /** kill -9 of radosgw or the OSD (object store runs). */
  async killCeph(daemon: 'rgw' | 'osd'): Promise<void> {
    if (!this.ceph) throw new Error('Ceph faults need --store s3');
    await this.ceph.kill9(daemon);
  }

  async startCeph(daemon: 'rgw' | 'osd'): Promise<void> {
    await this.ceph?.start(daemon);
  }

  /** The gateway machine is lost: the gateway killed, its local folder (log and copies) deleted, an empty one in its place. */
  async loseGatewayMachine(): Promise<void> {
    if (!this.ceph) throw new Error('a gateway machine loss needs --store s3');
    await this.killGateway();
    const local = join(this.storeMount, 'store');
    await rm(local, { recursive: true, force: true });
    await mkdir(local);
  }

  startAgent(): DrProcess {
    const a = startDr(
      [
        'agent',
        '--app',
        APP,
        '--tracker',
        this.opts.volumes === 'loop' ? 'trace' : 'scan',
        '--interval',
        `${this.opts.intervalMs}ms`,
      ],
      { ...this.env, DR_GATEWAY: this.proxy.address },
    );
    if (a.child.pid) this.pids.add(a.child.pid);
    this.agent = a;
    this.agents.push(a);
    return a;
  }

  async killAgent(): Promise<void> {
    await this.agent?.kill9();
    this.agent = undefined;
  }

  /** Every agent's log lines so far, parsed (pino JSON lines). */
  agentLines(): Array<Record<string, unknown>> {
    return logLines(this.agents);
  }

  /** Every gateway's log lines so far, parsed. */
  gatewayLines(): Array<Record<string, unknown>> {
    return logLines(this.gateways);
  }

  startWriter(): void {
    const [a, b] = this.volumes as [ChaosVolume, ChaosVolume];
    const w = spawn(
      process.execPath,
      this.opts.volumes === 'loop'
        ? [
            writerScript,
            join(a.mount as string, RECORDS_FILE),
            join(b.mount as string, RECORDS_FILE),
            String(this.opts.rate),
          ]
        : [
            writerScript,
            a.image,
            b.image,
            String(this.opts.rate),
            '--raw',
            '--pidfile',
            this.pidfile,
            '--settle-ms',
            String(WRITER_SETTLE_MS),
          ],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...this.env } },
    );
    if (w.pid) this.pids.add(w.pid);
    this.writer = w;
  }

  /** Stops the writer (SIGTERM, or SIGKILL with `crash`); resolves with the records each file holds. */
  async stopWriter(crash = false): Promise<number[]> {
    const w = this.writer;
    this.writer = undefined;
    if (!w || w.exitCode !== null || w.signalCode !== null) return [];
    let out = '';
    w.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise((r) => w.once('exit', r));
    w.kill(crash ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => w.kill('SIGKILL'), 20_000); // a writer blocked on a frozen fs
    await exited;
    clearTimeout(timer);
    return out.trim().split(/\s+/).filter(Boolean).map(Number);
  }

  /** Fills the store's file system to the last block; `freeStore` gives the room back. */
  async fillStore(): Promise<void> {
    if (this.opts.volumes !== 'loop')
      throw new Error('a full store needs its own file system (loop volumes)');
    const dir = join(this.storeMount, 'ballast');
    this.ballast = dir;
    await mkdir(dir, { recursive: true });
    const s = await statfs(this.storeMount);
    // Allocate in halving steps: whatever the metadata took, the last blocks go too.
    let n = 0;
    for (let step = s.bfree * s.bsize; step >= 4096; ) {
      const ok = await execFileP('fallocate', ['-l', String(step), join(dir, String(n))]).then(
        () => true,
        () => false, // no room for this step: try a smaller one
      );
      if (ok) n++;
      else step = Math.floor(step / 2);
    }
  }

  async freeStore(): Promise<void> {
    if (this.ballast) await rm(this.ballast, { recursive: true, force: true });
    this.ballast = undefined;
  }

  async status(): Promise<AppStatus | undefined> {
    const client = await this.client();
    return (await client.status(APP).catch(() => []))[0];
  }

  /** The gateway's points, or undefined while it cannot answer. */
  async points(): Promise<PointInfo[] | undefined> {
    const client = await this.client();
    return client.points(APP).catch(() => undefined);
  }

  private clientP: ReturnType<TestHome['client']> | undefined;
  private client() {
    this.clientP ??= this.t.client();
    return this.clientP;
  }

  /** Stops what still runs (gently, then by force), in the order a shutdown would. */
  async stop(): Promise<{ agentExit: number | null | undefined }> {
    await this.stopWriter();
    const agentExit = await this.agent?.stop();
    this.agent = undefined;
    await this.gateway?.stop();
    this.gateway = undefined;
    await this.proxy.close();
    await this.redis?.stop();
    this.redis = undefined;
    await this.freeStore();
    await this.stopCeph();
    return { agentExit };
  }

  private async stopCeph(): Promise<void> {
    const ceph = this.ceph;
    this.ceph = undefined;
    await ceph?.down();
    if (this.cephDir) await rm(this.cephDir, { recursive: true, force: true });
    this.cephDir = undefined;
  }

  async cleanup(): Promise<void> {
    await this.stopCeph().catch(() => undefined); // stop() did it already, or the rig never got that far
    await this.rig.cleanup();
    await this.t.cleanup();
  }
}

function logLines(processes: readonly DrProcess[]): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const p of processes) {
    for (const line of p.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        // a line cut off by kill -9: it carried nothing acknowledged
      }
    }
  }
  return out;
}
