/** Which chunks make up each segment: the runs of fencing tokens the catalog names, and nothing a stale gateway wrote. */
import { describe, expect, it } from 'vitest';
import {
  type Chunk,
  chainsIn,
  chunkKey,
  followChains,
  withChains,
} from '../../../../replicator/gateway/chunk-chains.js';

const c = (segment: number, offset: number, size: number, token: number): Chunk => ({
  segment,
  offset,
  size,
  token,
  key: chunkKey('web', segment, offset, token),
});
const at = (chunks: Chunk[]) => chunks.map((x) => `${x.segment}/${x.offset}.${x.token}`);

describe('chunk chains', () => {
  it('token 0 keeps the key an older bucket has; another token is a suffix', () => {
    expect(chunkKey('web', 3, 16)).toBe('apps/web/segments/00000003/000000000016');
    expect(chunkKey('web', 3, 16, 7)).toBe('apps/web/segments/00000003/000000000016.7');
  });

  it('follows each run’s token from where the run starts; a stale holder’s chunks at the same offsets are off the chain', () => {
    const chunks = [
      c(1, 0, 10, 5),
      c(1, 10, 10, 5),
      // Token 5 went on after token 6 took the segment over at 20: beside, never over.
      c(1, 20, 10, 5),
      c(1, 20, 4, 6),
      c(1, 24, 8, 6),
      c(1, 30, 10, 5),
      // Segment 2: unnamed by the catalog, the writer's (fence 6) from 0; token 5's is stale.
      c(2, 0, 7, 6),
      c(2, 0, 9, 5),
      // Segment 3: only a stale holder's: nothing on it.
      c(3, 0, 5, 5),
    ];
    const chains = {
      fence: 6,
      runs: new Map([
        [
          1,
          [
            [0, 5],
            [20, 6],
          ] as Array<[number, number]>,
        ],
      ]),
    };
    const { ends, runs, on, off } = followChains(chunks, chains);
    expect([...ends]).toEqual([
      [1, 32],
      [2, 7],
    ]);
    expect(at(on.get(1) ?? [])).toEqual(['1/0.5', '1/10.5', '1/20.6', '1/24.6']);
    expect(at(on.get(2) ?? [])).toEqual(['2/0.6']);
    expect(runs.get(2)).toEqual([[0, 6]]);
    expect(at(off).sort()).toEqual(['1/20.5', '1/30.5', '2/0.5', '3/0.5']);
  });

  it('stops a chain at a gap, or at a run whose start it does not reach exactly', () => {
    const runs = new Map([
      [
        1,
        [
          [0, 1],
          [10, 2],
        ] as Array<[number, number]>,
      ],
    ]);
    // Token 1's chunk overshoots where token 2 starts: token 2 is not reached.
    const { ends, off } = followChains([c(1, 0, 12, 1), c(1, 10, 5, 2)], { fence: 2, runs });
    expect(ends.get(1)).toBe(12);
    expect(at(off)).toEqual(['1/10.2']);
    const gap = followChains([c(1, 0, 4, 1), c(1, 6, 4, 1), c(1, 10, 5, 2)], { fence: 2, runs });
    expect(gap.ends.get(1)).toBe(4);
    expect(at(gap.off)).toEqual(['1/6.1', '1/10.2']);
  });

  it('reads the chains back from the catalog it adds them to; a catalog without them is token 0 throughout', () => {
    const local = Buffer.from(
      `${JSON.stringify({ version: 1, app: 'web', points: [] }, null, 2)}\n`,
    );
    const runs = new Map<number, Array<[number, number]>>([
      [
        2,
        [
          [0, 3],
          [64, 4],
        ],
      ],
    ]);
    const written = withChains(local, { fence: 4, runs });
    expect(JSON.parse(written.toString()).points).toEqual([]);
    const back = chainsIn(written, 'catalog.json');
    expect(back.fence).toBe(4);
    expect([...back.runs]).toEqual([...runs]);
    expect(chainsIn(local, 'catalog.json')).toEqual({ fence: 0, runs: new Map() });
  });

  it('refuses malformed chains, naming the object and the remedy', () => {
    const bad = (chunks: unknown) =>
      Buffer.from(JSON.stringify({ version: 1, app: 'web', chunks }));
    for (const chunks of [
      { fence: -1, runs: {} },
      { fence: 1, runs: { x: [[0, 1]] } },
      { fence: 1, runs: { 1: [] } },
      { fence: 1, runs: { 1: [[0]] } },
      'runs',
    ]) {
      expect(() => chainsIn(bad(chunks), 's3://b/apps/web/catalog.json')).toThrow(
        expect.objectContaining({
          code: 'store_corrupt',
          subject: 's3://b/apps/web/catalog.json',
          message: expect.stringContaining('malformed chunks'),
        }),
      );
    }
    expect(() => chainsIn(Buffer.from('{'), 'c')).toThrow(/is not JSON/);
  });
});
