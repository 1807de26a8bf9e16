// Failback's freeze of a running DR server: every acknowledged record is in the frozen copy, nothing after it.
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { silentLog } from '../../core/log.js';
import { createLocalProvider } from '../../replicator/providers/local-provider.js';
import { groupAlive } from '../../replicator/providers/process-group.js';
import type { Provider } from '../../replicator/providers/provider.js';
import { readFromExt4 } from '../chaos/point-checks.js';
import { loopProblem, tool } from '../helpers/loop-device.js';
import { checkRecordPrefix } from '../helpers/records.js';
import { skipBecause } from '../helpers/skip.js';
import { until, waitFor } from '../helpers/wait-for.js';

const writer = fileURLToPath(new URL('../fixtures/record-pair-writer.mjs', import.meta.url));
const SIZE = 32 * 1024 * 1024;

/**
 * A DR server like a real one: attaches its image to a loop device, mounts it and writes
 * records there (the pair writer, both files on this one volume, printing each acknowledgement);
 * SIGTERM stops the writer, unmounts and detaches.
 */
const START = `
here=$(dirname "$DR_VOLUME_DATA")
dev=$(losetup --find --show "$DR_VOLUME_DATA") || exit 1
mkdir -p "$here/m" && mount "$dev" "$here/m" || { losetup -d "$dev"; exit 1; }
"$NODE" "$WRITER" "$here/m/a.log" "$here/m/b.log" 100 --acks --pidfile "$here/writer.pid" > "$here/acks.out" &
w=$!
trap 'kill $w; wait $w; umount "$here/m"; losetup -d "$dev"; exit 0' TERM
wait $w
`;

describe('failback freezes the running DR server for its final copy', () => {
  let dir: string;
  let provider: Provider;
  let problem: string | undefined;

  beforeEach(async (ctx: TestContext) => {
    problem = await loopProblem();
    if (problem) skipBecause(ctx, problem);
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-freeze-'));
    process.env.NODE = process.execPath;
    process.env.WRITER = writer;
    provider = createLocalProvider({ dir, start: START });
  });

  afterEach(async () => {
    if (problem) return;
    for (const op of await provider.leftovers()) await provider.destroy(op, silentLog);
    await rm(dir, { recursive: true, force: true });
  });

  const launch = async (opId: string) => {
    const opDir = join(dir, opId);
    await mkdir(opDir, { recursive: true });
    const image = join(opDir, 'data.img');
    await tool('truncate', ['-s', String(SIZE), image]);
    await tool('mkfs.ext4', ['-q', '-F', image]);
    const server = await provider.launch({
      opId,
      app: 'web',
      mode: 'failover',
      volumes: [{ name: 'data', path: image, size: SIZE }],
      signal: new AbortController().signal,
      log: silentLog,
    });
    const acks = join(opDir, 'acks.out');
    return { opDir, image, acks, pgid: Number(server.details.pid) };
  };
  /** The writer's last acknowledged count (it prints `A B` after each record). */
  const acked = async (file: string) =>
    Number(
      (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').at(-1)?.split(' ')[1] ?? 0,
    );
  const mounted = async (m: string) =>
    (await readFile('/proc/self/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === m);

  it('freezes instead of stopping, kills it frozen: every acknowledged record is in the copy taken while frozen', {
    timeout: 120_000,
  }, async () => {
    const s = await launch('op-freeze00001');
    await until('the DR server writing', async () =>
      (await acked(s.acks)) >= 20 ? true : undefined,
    );
    const frozen = await provider.freeze?.('op-freeze00001', silentLog);
    expect(frozen?.hook).toBe(false);
    expect(frozen?.mounts).toEqual([join(s.opDir, 'm')]);
    // Frozen, not stopped: the server still runs (its writer blocked on the frozen file system).
    expect(groupAlive(s.pgid)).toBe(true);
    const pid = Number((await readFile(join(s.opDir, 'writer.pid'), 'utf8')).trim());
    await waitFor(
      'the writer blocked on the frozen file system',
      async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.startsWith('D'),
      30_000,
    );
    const ackedWhileFrozen = await acked(s.acks);
    // The final copy, taken while frozen: a clean file system (the freeze flushed it).
    const copy = join(dir, 'copy.img');
    await copyFile(s.image, copy);
    expect(await provider.stop?.('op-freeze00001', silentLog)).toBe(true);
    expect(groupAlive(s.pgid)).toBe(false);
    expect(await mounted(join(s.opDir, 'm'))).toBe(false);
    expect((await tool('losetup', ['-j', s.image])).trim()).toBe('');
    // Nothing was acknowledged after the freeze, and everything acknowledged is in the copy.
    expect(await acked(s.acks)).toBe(ackedWhileFrozen);
    const inCopy = checkRecordPrefix(await readFromExt4(copy, '/b.log'));
    expect(inCopy).toBeGreaterThanOrEqual(ackedWhileFrozen);
    expect(checkRecordPrefix(await readFromExt4(copy, '/a.log'))).toBeLessThanOrEqual(inCopy + 1);
  });

  it('thawed after a failed failback, the server runs on and writes again', {
    timeout: 120_000,
  }, async () => {
    const s = await launch('op-freeze00002');
    await until('the DR server writing', async () =>
      (await acked(s.acks)) >= 5 ? true : undefined,
    );
    const frozen = await provider.freeze?.('op-freeze00002', silentLog);
    expect(frozen?.mounts).toHaveLength(1);
    // A second freeze (a worker resumed after a kill) finds it frozen and is fine.
    expect((await provider.freeze?.('op-freeze00002', silentLog))?.mounts).toEqual(frozen?.mounts);
    const before = await acked(s.acks);
    expect(await provider.thaw?.('op-freeze00002', silentLog)).toBe(true);
    await until('records acknowledged after the thaw', async () =>
      (await acked(s.acks)) > before + 5 ? true : undefined,
    );
    expect(await stat(join(s.opDir, 'frozen.json')).catch(() => undefined)).toBeUndefined();
    // Not frozen any more: stop is the usual SIGTERM, whose handler unmounts.
    expect(await provider.stop?.('op-freeze00002', silentLog)).toBe(true);
    expect(await mounted(join(s.opDir, 'm'))).toBe(false);
  });

  it('a server with nothing mounted from its images has nothing to freeze (failback stops it instead)', async () => {
    const plain = createLocalProvider({ dir, start: 'exec sleep 600' });
    const opDir = join(dir, 'op-freeze00003');
    await mkdir(opDir, { recursive: true });
    const image = join(opDir, 'data.img');
    await tool('truncate', ['-s', String(SIZE), image]);
    await plain.launch({
      opId: 'op-freeze00003',
      app: 'web',
      mode: 'failover',
      volumes: [{ name: 'data', path: image, size: SIZE }],
      signal: new AbortController().signal,
      log: silentLog,
    });
    expect(await plain.freeze?.('op-freeze00003', silentLog)).toBeUndefined();
    expect(await plain.stop?.('op-freeze00003', silentLog)).toBe(true);
  });
});

describe("the local provider's freeze and thaw hooks", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-freeze-hook-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const launch = async (provider: Provider, opId: string) => {
    const opDir = join(dir, opId);
    await mkdir(opDir, { recursive: true });
    const image = join(opDir, 'data.img');
    await tool('truncate', ['-s', '1M', image]);
    const s = await provider.launch({
      opId,
      app: 'web',
      mode: 'failover',
      volumes: [{ name: 'data', path: image, size: 1 << 20 }],
      signal: new AbortController().signal,
      log: silentLog,
    });
    return { opDir, pgid: Number(s.details.pid) };
  };

  it('runs the freeze hook with the server environment (once, however often asked), and the thaw hook on thaw', async () => {
    const provider = createLocalProvider({
      dir,
      start: 'exec sleep 600',
      freeze: 'echo "$DR_OP_ID $DR_VOLUME_DATA" >> "$(dirname "$DR_VOLUME_DATA")/froze"',
      thaw: 'touch "$(dirname "$DR_VOLUME_DATA")/thawed"',
    });
    const s = await launch(provider, 'op-hook000001');
    try {
      const frozen = await provider.freeze?.('op-hook000001', silentLog);
      expect(frozen).toMatchObject({ hook: true, mounts: [] });
      await provider.freeze?.('op-hook000001', silentLog);
      expect(await readFile(join(s.opDir, 'froze'), 'utf8')).toBe(
        `op-hook000001 ${join(s.opDir, 'data.img')}\n`,
      );
      expect(groupAlive(s.pgid)).toBe(true);
      expect(await provider.thaw?.('op-hook000001', silentLog)).toBe(true);
      expect(await stat(join(s.opDir, 'thawed')).catch(() => undefined)).toBeDefined();
    } finally {
      await provider.destroy('op-hook000001', silentLog);
    }
  });

  it('a freeze hook that fails refuses the freeze, names the hook, and leaves the server running unfrozen', async () => {
    const provider = createLocalProvider({
      dir,
      start: 'exec sleep 600',
      freeze: 'echo "database busy" >&2; exit 4',
      thaw: 'true',
    });
    const s = await launch(provider, 'op-hook000002');
    try {
      const err = await provider.freeze?.('op-hook000002', silentLog).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'quiesce_failed' });
      expect((err as Error).message).toContain(
        "the recovered server's freeze hook exited 4: database busy",
      );
      expect((err as Error).message).toContain('fix the provider freeze hook');
      expect(groupAlive(s.pgid)).toBe(true);
      expect(await stat(join(s.opDir, 'frozen.json')).catch(() => undefined)).toBeUndefined();
      expect(await provider.thaw?.('op-hook000002', silentLog)).toBe(false);
    } finally {
      await provider.destroy('op-hook000002', silentLog);
    }
  });
});
