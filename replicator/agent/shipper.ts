/** What a cycle ships blocks through: the batch shipper, or anything that seals and sends like it. */
import type { ShipVolume } from './batch-shipper.js';

export type { ShipVolume };

/**
 * One cycle's way to the gateway: blocks go in with `add`, `finish` resolves once every one is
 * durable at the gateway. `BatchShipper` is the one in use; a compressing or rate-capped shipper
 * fits the same place.
 */
export interface Shipper {
  /** Blocks added, their plaintext bytes, and the bytes sent on the wire (acknowledged). */
  readonly blocks: number;
  readonly plainBytes: number;
  readonly bytesSent: number;
  /** Of `blocks`, those sent as references to a block the gateway holds (when it counts them). */
  readonly repeatedBlocks?: number;
  /** Highest acknowledged batch sequence number. */
  readonly lastAcked: number;
  add(volume: ShipVolume, block: number, plain: Buffer, mac: Buffer): Promise<void>;
  /** Sends what is open without waiting for acknowledgements (before a freeze). */
  flush(): Promise<void>;
  /** Sends what is open and waits for every acknowledgement; throws the first failure. */
  finish(): Promise<void>;
  /** Waits for what is on the wire without throwing (after a failure elsewhere). */
  settle(): Promise<void>;
  /** Ends the cycle's use of the shipper (gives back an unused batch number). */
  close(): void;
}
