import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import {
  diskSerials,
  findAttachedDisk,
} from '../../../../replicator/providers/find-attached-disk.js';

let dir: string;
const signal = new AbortController().signal;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-byid-'));
  await mkdir(join(dir, 'dev'));
  await mkdir(join(dir, 'by-id'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function device(name: string, link: string): Promise<string> {
  const path = join(dir, 'dev', name);
  await writeFile(path, '');
  await symlink(path, join(dir, 'by-id', link));
  return path;
}

describe('findAttachedDisk', () => {
  it('cuts virtio serials at 20 characters and keeps NVMe ones whole', () => {
    expect(diskSerials('d-bp1abcdefghijklmnopqrs')).toEqual([
      'bp1abcdefghijklmnopqrs',
      'bp1abcdefghijklmnopq',
    ]);
    expect(diskSerials('d-bp1short', 'bp1short')).toEqual(['bp1short']);
  });

  it('finds a virtio disk and an NVMe disk by serial, not their partitions', async () => {
    await device('vdb1', 'virtio-bp1abcdefghijklmnopq-part1');
    const vdb = await device('vdb', 'virtio-bp1abcdefghijklmnopq');
    const nvme = await device('nvme1n1', 'nvme-Alibaba_Cloud_Elastic_Block_Storage_bp1nvmeserial');
    const byIdDir = join(dir, 'by-id');
    expect(await findAttachedDisk('d-bp1abcdefghijklmnopqrs', '', { byIdDir, signal })).toBe(vdb);
    expect(await findAttachedDisk('d-bp1nvmeserial', undefined, { byIdDir, signal })).toBe(nvme);
  });

  it('waits for udev to make the link', async () => {
    const byIdDir = join(dir, 'by-id');
    const found = findAttachedDisk('d-bp1late', '', { byIdDir, signal, timeoutMs: 20_000 });
    const path = await device('vdc', 'virtio-bp1late');
    expect(await found).toBe(path);
  });

  it('gives up after its bound with the disk, serial, directory and remedy', async () => {
    const byIdDir = join(dir, 'missing');
    const err = await findAttachedDisk('d-bp1never', '', { byIdDir, signal, timeoutMs: 200 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err?.message).toContain(
      `disk d-bp1never is attached but no device with serial bp1never appeared under ${byIdDir}`,
    );
    expect(err?.message).toContain('To resolve, run `dr worker` on the ECS instance');
  });
});
