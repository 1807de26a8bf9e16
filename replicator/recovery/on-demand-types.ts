/** What an on-demand volume is opened with, and the hydration state it reports. */
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import type { ReadParallelism } from './read-parallelism.js';

export interface OnDemandOptions {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  volume: string;
  /** The local copy (plaintext, 0600): fetched blocks and the server's writes. */
  path: string;
  /** How long a fetch keeps retrying an unreachable gateway before the read fails (EIO). */
  retryForMs?: number;
  /** Whether a file already at `path` (an earlier attempt) is kept: its blocks are reused only after their MAC matches. */
  reuse?: boolean;
  /** Ranges and worker threads the hydrator copies with (recovery.restoreParallel/-Workers); the machine's default unless set. */
  parallel?: ReadParallelism | undefined;
}

export interface HydrationState {
  volume: string;
  size: number;
  blocksTotal: number;
  blocksLocal: number;
  /** Fetches that failed for a gateway that could not be reached and were tried again. */
  retries: number;
  /** ms since epoch the image became whole (no longer depends on the gateway). */
  hydratedAt?: number;
  /** Why the volume can no longer be served (a tampered record, a gateway gone for too long). */
  failed?: string;
}
