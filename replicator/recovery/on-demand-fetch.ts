/** How an on-demand volume fetches blocks: retried while the gateway is unreachable, each record checked against the point's MAC. */
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, isDrError, systemCode } from '../../core/errors.js';
import { openBlock, readRecordHeader } from '../crypto/block-cipher.js';
import { MAC_BYTES, type VolumeKeys } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail, VolumeInfo } from '../transport/wire-types.js';

/** What a fetch needs of its volume: where to fetch from, its keys, and the MACs the point vouches for. */
export interface FetchSource {
  client: GatewayClient;
  app: string;
  point: PointDetail;
  volume: string;
  keys: VolumeKeys;
  info: VolumeInfo;
  /** The MAC every block must have at this point (authenticated through the point's digest). */
  macs: Buffer;
  /** Blocks in the volume. */
  blocks: number;
}

/** Fetches the records of blocks [from, to), each authenticated against the point's MAC for it. */
export async function fetchVerifiedBlocks(
  s: FetchSource,
  from: number,
  to: number,
): Promise<Map<number, Buffer>> {
  const { client, app, point, volume } = s;
  const out = new Map<number, Buffer>();
  for await (const { block, seq, record, recordBlock } of client.records(
    app,
    point.id,
    volume,
    undefined,
    {
      from,
      to,
    },
  )) {
    if (block < from || block >= to || block >= s.blocks) continue;
    const want = s.macs.subarray(block * MAC_BYTES, (block + 1) * MAC_BYTES);
    // openBlock checks the plaintext against the record's MAC; the MAC must be the point's.
    if (!readRecordHeader(record).mac.equals(want)) {
      throw new DrError(
        `block ${block} of ${app}/${volume} is not the one point ${point.id} committed`,
        {
          code: 'block_corrupt',
          subject: `${volume} block ${block}`,
          remedy: 'recover an older point, or run `dr verify` to list every damaged block',
        },
      );
    }
    const plain = openBlock(
      s.keys,
      { app, volume, volumeId: s.info.id, block, seq, recordBlock },
      record,
    );
    out.set(block, plain);
  }
  return out;
}

/** Retries a gateway that cannot be reached, with backoff, for `retryForMs`; other errors at once. */
export async function withGatewayRetry<T>(
  fn: () => Promise<T>,
  retryForMs: number,
  closed: () => boolean,
  onRetry: () => void,
): Promise<T> {
  const until = Date.now() + retryForMs;
  let wait = 100;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isDrError(err, 'gateway_unreachable') || Date.now() + wait > until || closed())
        throw err;
      onRetry();
      await sleep(wait);
      wait = Math.min(wait * 2, 5000);
    }
  }
}

/** The error a fetch that failed for good fails the volume (at `path`, named `name`) with. */
export function volumeFailure(err: unknown, path: string, name: string): DrError {
  return isDrError(err)
    ? err
    : systemCode(err) === 'ENOSPC'
      ? new DrError(`the DR disk is full: ${path} cannot take block data of ${name}`, {
          code: 'provider_failed',
          subject: path,
          remedy:
            'free space under DR_HOME/recovery (or move it to a larger disk), then recover again',
          cause: err,
        })
      : new DrError(`${name}: ${errorMessage(err)}`, {
          code: 'provider_failed',
          subject: name,
          remedy: 'see the worker log; recover again',
          cause: err,
        });
}
