import { describe, expect, it } from 'vitest';
import { reverseVolumes } from '../../../cli/reverse-volumes.js';
import type { AppConfig } from '../../../core/config.js';

const web = {
  volumes: [
    { name: 'root', path: '/dev/vda' },
    { name: 'data', path: '/dev/vdb' },
  ],
  blockSize: 65536,
} as AppConfig;

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
};

describe('dr agent --reverse: the volumes on the recovered server', () => {
  it('puts every volume at the path given, limited to its size, keeping the rest of the app', () => {
    const c = reverseVolumes(
      'web',
      web,
      ['root=/dev/disk/by-id/virtio-bp1a', 'data=/dev/disk/by-id/virtio-bp1b'],
      ['root=4194304'],
    );
    expect(c.volumes).toEqual([
      { name: 'root', path: '/dev/disk/by-id/virtio-bp1a', size: 4194304 },
      { name: 'data', path: '/dev/disk/by-id/virtio-bp1b' },
    ]);
    expect(c.blockSize).toBe(65536);
  });

  it('refuses a missing volume, an unknown one, a malformed pair and a size that is not bytes', () => {
    expect(refusal(() => reverseVolumes('web', web, ['root=/dev/vdc'], []))).toBe(
      '--reverse needs --volume data=PATH. To resolve, give every volume of the app with its path on this server',
    );
    expect(refusal(() => reverseVolumes('web', web, ['root=/a', 'data=/b', 'logs=/c'], []))).toBe(
      'web has no volume logs. To resolve, name its volumes: root, data',
    );
    expect(refusal(() => reverseVolumes('web', web, ['root'], []))).toBe(
      '--volume root is not NAME=PATH. To resolve, write it like --volume NAME=PATH',
    );
    expect(refusal(() => reverseVolumes('web', web, ['root=/a', 'data=/b'], ['data=1.5GiB']))).toBe(
      '--size data=1.5GiB is not a size in bytes. To resolve, write it like data=4194304',
    );
  });
});
