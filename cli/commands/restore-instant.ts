/** `dr restore --instant --mount DIR`: a point's file system mounted read-only straight from the vault, fetched as it is read. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../../replicator/crypto/key-encryption-key.js';
import { fuseUnavailable, mountVolumes } from '../../replicator/recovery/fuse-mount.js';
import { OnDemandVolume } from '../../replicator/recovery/on-demand-volume.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import type { PointDetail } from '../../replicator/transport/wire-types.js';

const run = promisify(execFile);

export interface InstantMountOptions {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  volume: string;
  mount: string;
  log: Logger;
  /** Aborted by SIGINT/SIGTERM: everything is unmounted and removed, then the promise resolves. */
  signal: AbortSignal;
  /** Told once the file system is mounted. */
  onMounted: (dir: string, device: string) => void;
}

/**
 * Serves one volume on demand over FUSE, attaches a read-only loop device to it and mounts its
 * file system read-only at `mount` until `signal` aborts. Only the blocks read are fetched (and
 * authenticated); the plaintext copy lives in a private temporary directory removed at the end.
 */
export async function mountInstant(o: InstantMountOptions): Promise<void> {
  const why = await fuseUnavailable();
  if (why !== undefined) {
    throw new DrError(`cannot serve ${o.app}/${o.volume} on demand: ${why}`, {
      code: 'dependency_missing',
      subject: 'FUSE',
      remedy: 'restore the whole image with --to FILE instead (no FUSE needed)',
    });
  }
  if (process.getuid?.() !== 0) {
    throw new DrError('mounting a volume needs root (a loop device and mount)', {
      code: 'usage',
      subject: '--mount',
      remedy: 'run `dr restore --instant --mount` as root, or restore with --to FILE',
    });
  }
  const dir = resolve(o.mount);
  const target = await stat(dir).catch(() => undefined);
  if (!target?.isDirectory()) {
    throw new DrError(`--mount ${o.mount} is not a directory`, {
      code: 'usage',
      subject: o.mount,
      remedy: `create it first (\`mkdir -p ${o.mount}\`)`,
    });
  }
  const work = await mkdtemp(join(tmpdir(), 'lifeboat-instant-'));
  const undo: Array<() => Promise<unknown>> = [() => rm(work, { recursive: true, force: true })];
  try {
    await mkdir(work, { recursive: true, mode: 0o700 });
    const v = await OnDemandVolume.open({
      client: o.client,
      kek: o.kek,
      app: o.app,
      point: o.point,
      volume: o.volume,
      path: join(work, `${o.volume}.local`),
    });
    undo.unshift(() => v.close());
    const served = await mountVolumes(join(work, 'fuse'), [v], o.log);
    undo.unshift(() => served.unmount());
    const file = served.paths[o.volume] as string;
    const { stdout } = await run('losetup', ['--find', '--show', '--read-only', file]);
    const device = stdout.trim();
    undo.unshift(() => run('losetup', ['-d', device]));
    try {
      // noload: a read-only mount must not replay the journal (nothing may write the volume).
      await run('mount', ['-o', 'ro,noload', device, dir]);
    } catch {
      await run('mount', ['-o', 'ro', device, dir]).catch((err: unknown) => {
        throw new DrError(
          `cannot mount ${o.app}/${o.volume} at point ${o.point.id}: ${errorMessage(err).split('\n').at(-2) ?? errorMessage(err)}`,
          {
            code: 'volume_unreadable',
            subject: `${o.app}/${o.volume}`,
            remedy:
              'the volume may hold no file system this kernel mounts (a partition table?); restore it with --to FILE',
          },
        );
      });
    }
    undo.unshift(() => run('umount', [dir]).catch(() => run('umount', ['-l', dir])));
    o.onMounted(dir, device);
    await new Promise<void>((done) => {
      if (o.signal.aborted) return done();
      o.signal.addEventListener('abort', () => done(), { once: true });
    });
  } finally {
    for (const step of undo) {
      await step().catch((err: unknown) =>
        o.log.warn({ err: errorMessage(err) }, 'instant mount: a clean-up step failed'),
      );
    }
  }
}
