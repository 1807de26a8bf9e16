import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scanChanges, segmentsOf } from '../../../../replicator/capture/scan-tracker.js';
import { VolumeFile } from '../../../../replicator/capture/volume-file.js';
import { blockMac } from '../../../../replicator/crypto/volume-key.js';

const BS = 4096;

describe('segmentsOf', () => {
  it('splits the volume into read and zero segments over whole blocks only', () => {
    const size = 10 * BS + 100; // a partial last block
    const zeros: Array<[number, number]> = [
      [BS + 1, 4 * BS], // blocks 2 and 3 whole; block 1 only partly
      [5 * BS, 5 * BS + 10], // no whole block: read
      [7 * BS, 20 * BS], // blocks 7..9, the partial block 10 is read
    ];
    expect([...segmentsOf(size, BS, zeros, 64)]).toEqual([
      { first: 0, last: 1, zero: false },
      { first: 2, last: 3, zero: true },
      { first: 4, last: 6, zero: false },
      { first: 7, last: 9, zero: true },
      { first: 10, last: 10, zero: false },
    ]);
  });
  it('caps each segment at the read size, and covers every block once without ranges', () => {
    const segs = [...segmentsOf(10 * BS, BS, [], 4)];
    expect(segs).toEqual([
      { first: 0, last: 3, zero: false },
      { first: 4, last: 7, zero: false },
      { first: 8, last: 9, zero: false },
    ]);
    expect([...segmentsOf(10 * BS, BS, [[0, 10 * BS]], 4)].map((s) => s.zero)).toEqual([
      true,
      true,
      true,
    ]);
  });
});

describe('scanChanges with zero ranges', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-scan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const key = randomBytes(32);

  it('treats a block inside a zero range as zeros, even when the file holds data there', async () => {
    const data = randomBytes(8 * BS);
    const path = join(dir, 'v.img');
    writeFileSync(path, data);
    const volume = await VolumeFile.open('v', path);
    const zeroMac = blockMac(key, Buffer.alloc(BS));
    const known = Buffer.alloc(8 * 16);
    for (let b = 0; b < 8; b++) zeroMac.copy(known, b * 16);
    // Blocks 2..5 are "free space": their stale content must not be read or sent.
    const seen: Array<{ block: number; plain: Buffer }> = [];
    for await (const c of scanChanges({
      volume,
      size: data.length,
      blockSize: BS,
      macKey: key,
      known,
      zeroRanges: async () => [[2 * BS, 6 * BS]],
    }))
      seen.push({ block: c.block, plain: Buffer.from(c.plain) });
    await volume.close();
    expect(seen.map((s) => s.block)).toEqual([0, 1, 6, 7]);
    for (const s of seen)
      expect(s.plain.equals(data.subarray(s.block * BS, (s.block + 1) * BS))).toBe(true);
  });

  it('sends zeros for a free block the DR site holds data for, so a deleted file reads as zeros', async () => {
    const path = join(dir, 'w.img');
    writeFileSync(path, randomBytes(4 * BS));
    const volume = await VolumeFile.open('w', path);
    const known = Buffer.alloc(4 * 16, 1); // the DR site holds something else in every block
    const seen: Array<{ block: number; zero: boolean; mac: Buffer }> = [];
    for await (const c of scanChanges({
      volume,
      size: 4 * BS,
      blockSize: BS,
      macKey: key,
      known,
      zeroRanges: async () => [[BS, 3 * BS]],
    }))
      seen.push({
        block: c.block,
        zero: c.plain.equals(Buffer.alloc(BS)),
        mac: Buffer.from(c.mac),
      });
    await volume.close();
    expect(seen.map((s) => [s.block, s.zero])).toEqual([
      [0, false],
      [1, true],
      [2, true],
      [3, false],
    ]);
    expect(seen[1]?.mac.equals(blockMac(key, Buffer.alloc(BS)))).toBe(true);
  });
});
