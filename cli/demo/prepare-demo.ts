import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Document, isMap, type YAMLMap } from 'yaml';
import { updateConfig } from '../../core/config.js';
import { readEnv } from '../../core/env.js';
import { DrError, errorMessage } from '../../core/errors.js';
import { runDir } from '../../core/up-state.js';
import type { DemoRun } from '../up/run-up.js';
import { demoScript, shellQuote } from './demo-files.js';
import { writeDrServerScript, writeFenceScript, writeHookScript } from './demo-scripts.js';
import { prepareWeb, WEB_APP } from './prepare-web.js';

const exec = promisify(execFile);

export const DEMO_APP = 'demo-shop';
const EXT4_SIZE = 64 * 1024 * 1024;
const FILE_SIZE = 16 * 1024 * 1024;

/** How demo-shop's volume is made: ext4 on a loop device (root), or the database file itself. */
export type DemoKind = 'ext4' | 'file';

interface DemoRecord {
  kind: DemoKind;
  createdAt: string;
}

const demoDir = (home: string) => join(home, 'demo');
const recordPath = (home: string) => join(demoDir(home), 'demo.json');

/** Whether `dr up --demo` made demo-shop in this home (then every `dr up` brings it up). */
export function demoExists(home: string): boolean {
  return existsSync(recordPath(home));
}

const script = demoScript;
const q = shellQuote;

/** Why ext4 on a loop device cannot be used here, or undefined. */
async function loopProblem(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (readEnv('DR_DEMO_ROOTLESS', env)) return 'DR_DEMO_ROOTLESS=1 is set';
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const [tool, args, pkg] of [
    ['losetup', ['--version'], 'mount'],
    ['mkfs.ext4', ['-V'], 'e2fsprogs'],
    ['debugfs', ['-V'], 'e2fsprogs'],
    ['fsfreeze', ['--version'], 'util-linux'],
  ] as const) {
    const r = spawnSync(tool, [...args], { env, stdio: 'ignore' });
    if (r.error || r.status !== 0) return `${tool} is missing (apt-get install -y ${pkg})`;
  }
  if (!existsSync('/dev/loop-control'))
    return 'this system has no loop devices (/dev/loop-control)';
  return undefined;
}

/**
 * Makes (or brings back) demo-shop: its volume, its entry in dr.yaml with two on-call people, and
 * the order service as a child of `dr up`. As root: ext4 on a loop device, frozen with fsfreeze,
 * changes found by block tracing. Otherwise, said on the terminal: the database file is the volume
 * and the service's own hook quiesces it.
 */
export async function prepareDemo(
  home: string,
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
): Promise<DemoRun> {
  const sqlite = spawnSync('sqlite3', ['-version'], { env, stdio: 'ignore' });
  if (sqlite.error || sqlite.status !== 0) {
    throw new DrError('the demo needs the sqlite3 command, which is not installed', {
      code: 'dependency_missing',
      subject: 'sqlite3',
      remedy: `install it with \`${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y sqlite3\``,
    });
  }
  const dir = demoDir(home);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const previous = await readFile(recordPath(home), 'utf8').then(
    (t) => JSON.parse(t) as DemoRecord,
    () => undefined, // first run
  );
  const problem = await loopProblem(env);
  let kind: DemoKind = problem ? 'file' : 'ext4';
  if (previous?.kind === 'ext4' && problem) {
    throw new DrError(`demo-shop was made on ext4 on a loop device, which needs root: ${problem}`, {
      code: 'dependency_missing',
      subject: DEMO_APP,
      remedy: `run \`dr up\` as root again, or start over with a new DR_HOME`,
    });
  }
  if (previous?.kind === 'file') kind = 'file';
  if (kind === 'file' && !previous) {
    out(
      `demo: ${problem}, so demo-shop's database is an image file (${join(dir, 'shop.db')}) quiesced by the service's own freeze hook, and its changes are found by scanning. As root it would be ext4 on a loop device with fsfreeze and block tracing.`,
    );
  } else if (kind === 'file' && problem) {
    out(`demo: demo-shop keeps its image file (${problem})`);
  }
  const state = join(runDir(home), 'demo-shop.json');
  let volume: Volume | undefined;
  if (kind === 'ext4') {
    try {
      volume = await ext4Volume(dir);
    } catch (err) {
      if (previous) throw err; // its orders live on that file system: no silent switch
      // A first start where loop devices do not really work (a container without them).
      await rm(join(dir, 'demo-shop-disk.img'), { force: true });
      out(
        `demo: ${errorMessage(err).replace(/\. To resolve, .*$/, '')}; so demo-shop's database is an image file (${join(dir, 'shop.db')}) quiesced by the service's own freeze hook, and its changes are found by scanning.`,
      );
      kind = 'file';
    }
  }
  volume ??= await fileVolume(dir);
  const tracefs = kind === 'ext4' ? await privateTracefs(dir, env) : undefined;
  const node = q(process.execPath);
  const hookScript = kind === 'file' ? await writeHookScript(dir, state) : undefined;
  const hook = (verb: string) => `${q(hookScript as string)} ${verb}`;
  const fenceScript = await writeFenceScript(dir, state, volume);
  const drServer = await writeDrServerScript(dir, kind);
  const web = await prepareWeb(home, dir, runDir(home), state);
  await updateConfig(home, (doc) => {
    writeDemoApp(doc, DEMO_APP, {
      tier: 'prod',
      blockSize: '16KiB',
      volumes: [{ name: 'data', path: volume.device }],
      quiesce:
        kind === 'ext4'
          ? { fsfreeze: [volume.mount as string] }
          : { freeze: hook('freeze'), thaw: hook('thaw'), timeout: '5s' },
      // Failover stops demo-shop at the source and unmounts its volume; failback mounts it and
      // starts demo-shop again once every order taken at the DR site is home.
      fence: `${q(fenceScript)} fence`,
      unfence: `${q(fenceScript)} unfence`,
      fenceTimeout: '30s',
      provider: {
        kind: 'local',
        // At the DR site after a failover, demo-shop runs on the recovered volume and takes orders.
        start: `${q(drServer)} ${node} ${q(script('shop-service'))}`,
        check: `${node} ${q(script('shop-check'))} --state ${q(state)} --kind ${kind}`,
        checkTimeout: '60s',
      },
      owners: ['alice'],
      rpoObjective: '30s',
    });
    writeDemoApp(doc, WEB_APP, web.app);
  });
  if (!previous) {
    await writeFile(
      recordPath(home),
      `${JSON.stringify({ kind, createdAt: new Date().toISOString() })}\n`,
    );
  }
  return {
    children: [
      {
        name: DEMO_APP,
        command: process.execPath,
        args: [script('shop-service'), '--db', volume.db, '--state', state, '--rate', '5'],
        env: {},
        logFile: join(runDir(home), 'demo-shop.log'),
        ready: /taking orders at/,
      },
      web.child,
    ],
    notes: [
      kind === 'ext4'
        ? `  demo-shop          orders on SQLite in ext4 on ${volume.device} (mounted at ${volume.mount}); fsfreeze + block tracing`
        : `  demo-shop          orders on SQLite in the image file ${volume.db}; the service's freeze hook + scanning`,
      ...web.notes,
      '  on call            alice and bob (sre-oncall): `failover demo-shop` needs both to approve;',
      '                     in the console, `as alice` then `approve A-…`, `as bob` then the same',
      '  status page        its Drill and Approve buttons: `npx dr signin --as alice` prints a sign-in link',
    ],
    ...(tracefs ? { agentEnv: { DR_TRACEFS: tracefs.path } } : {}),
    teardown: async () => {
      await volume.teardown();
      await tracefs?.teardown();
    },
  };
}

/**
 * Block tracing needs tracefs; where the system has none mounted (containers), a private mount
 * under DR_HOME/demo/tracefs serves the demo's agent (DR_TRACEFS), unmounted at the end.
 */
async function privateTracefs(
  dir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ path: string; teardown: () => Promise<void> } | undefined> {
  if (readEnv('DR_TRACEFS', env)) return undefined;
  for (const p of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    if (existsSync(join(p, 'instances'))) return undefined;
  }
  const path = join(dir, 'tracefs');
  await mkdir(path, { recursive: true });
  if (!existsSync(join(path, 'instances'))) {
    const mounted = await exec('mount', ['-t', 'tracefs', 'nodev', path]).then(
      () => true,
      () => false, // no tracefs here: the agent scans and says why
    );
    if (!mounted) return undefined;
  }
  return { path, teardown: () => exec('umount', [path]).then(() => undefined) };
}

export interface Volume {
  device: string;
  db: string;
  mount?: string;
  teardown: () => Promise<void>;
}

/** ext4 in an image file on a loop device, mounted under DR_HOME/demo/mnt; undone by teardown. */
async function ext4Volume(dir: string): Promise<Volume> {
  const image = join(dir, 'demo-shop-disk.img');
  const mount = join(dir, 'mnt');
  await mkdir(mount, { recursive: true });
  // A dr up killed without cleanup may have left it mounted and attached.
  await exec('umount', [mount]).catch(() => undefined); // not mounted: nothing to undo
  const attached = (await exec('losetup', ['-j', image])).stdout;
  for (const line of attached.split('\n')) {
    const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
    if (dev) await exec('losetup', ['-d', dev]).catch(() => undefined); // already detached
  }
  const fresh = !existsSync(image);
  if (fresh) {
    const fh = await open(image, 'w', 0o600);
    await fh.truncate(EXT4_SIZE);
    await fh.close();
  }
  const device = (await exec('losetup', ['--find', '--show', image])).stdout.trim();
  const teardown = async () => {
    await exec('fsfreeze', ['-u', mount]).catch(() => undefined); // not frozen
    await exec('umount', [mount]).catch(() => exec('umount', ['-l', mount]));
    await exec('losetup', ['-d', device]);
  };
  try {
    if (fresh) {
      await exec('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
    }
    await exec('mount', [device, mount]);
  } catch (err) {
    await teardown().catch(() => undefined); // reporting the first failure matters more
    throw new DrError(`cannot prepare demo-shop's ext4 volume on ${device}: ${errorMessage(err)}`, {
      code: 'dependency_missing',
      subject: image,
      remedy: 'check `losetup` and `mount` work here, or run without root for the image-file demo',
    });
  }
  return { device, db: join(mount, 'shop.db'), mount, teardown };
}

/** The database file itself is the volume, fixed in size (SQLite reads its own page count). */
async function fileVolume(dir: string): Promise<Volume> {
  const db = join(dir, 'shop.db');
  if (!existsSync(db)) {
    await exec('sqlite3', [
      db,
      'PRAGMA page_size=4096; PRAGMA journal_mode=DELETE; CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, cents INTEGER NOT NULL, created_ms INTEGER NOT NULL);',
    ]);
    const fh = await open(db, 'r+');
    await fh.truncate(FILE_SIZE);
    await fh.close();
  }
  return { device: db, db, teardown: async () => undefined };
}

/** Writes apps.NAME and, where missing, the two demo people on call. */
function writeDemoApp(doc: Document, name: string, app: Record<string, unknown>): void {
  const map = (key: string): YAMLMap => {
    let node = doc.get(key, true);
    if (!isMap(node)) {
      node = doc.createNode({});
      doc.set(key, node);
    }
    const m = node as YAMLMap;
    m.flow = false; // `apps: {}` as dr init writes it would put the demo on one line
    return m;
  };
  const people = map('people');
  for (const name of ['alice', 'bob']) {
    if (!people.has(name)) {
      people.set(name, doc.createNode({ ids: [`console:${name}`], groups: ['sre-oncall'] }));
    }
  }
  map('apps').set(name, doc.createNode(app));
}
