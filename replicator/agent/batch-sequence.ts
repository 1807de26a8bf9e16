/** The agent's batch sequence numbers: the next to send and the highest the gateway acknowledged. */

/**
 * Batch numbers are taken as batches open and given back when one closes empty, so the gateway
 * sees no gap; after a session reopens they continue past whatever the gateway already holds.
 */
export class BatchSequence {
  private nextSeq: number;
  /** The highest sequence the gateway acknowledged (and the agent knows of). */
  lastAcked: number;

  /** From a session: the gateway's last batch and the last one committed into a point. */
  constructor(lastSeq: number, committedSeq: number) {
    this.nextSeq = lastSeq + 1;
    this.lastAcked = committedSeq;
  }

  get next(): number {
    return this.nextSeq;
  }

  take(): number {
    return this.nextSeq++;
  }

  /** Gives back a number taken for a batch that never got a record (only the last one taken). */
  giveBack(seq: number): void {
    if (seq === this.nextSeq - 1) this.nextSeq--;
  }

  /** The gateway holds batches up to `lastSeq` (a reopened session): never reuse one of them. */
  continueAfter(lastSeq: number): void {
    this.nextSeq = Math.max(this.nextSeq, lastSeq + 1);
  }

  acked(seq: number): void {
    this.lastAcked = Math.max(this.lastAcked, seq);
  }
}
