/**
 * The sealed record stream's handshake: a restore's records (already AES-256-GCM under the volume's
 * key, which the gateway never holds) travel over plain TCP instead of a second AES-GCM pass in TLS.
 *
 * 1. The reader asks for a range over mutual TLS as before, with `x-lifeboat-bulk: KEY` (32 random
 *    bytes in hex, seen only inside TLS). A gateway that offers the stream answers 200 with no body
 *    and `x-lifeboat-bulk: PORT TICKET` (16 random bytes in hex, good once, for TICKET_MS).
 * 2. The reader connects to PORT on the same host and sends MAGIC | ticket | HMAC(KEY, reader, ticket).
 * 3. The gateway consumes the ticket, checks the proof, and answers HMAC(KEY, gateway, ticket) |
 *    status u16 | length u64, then the body: the records (200) or the error body (JSON).
 *
 * No key or reusable token crosses the wire in clear; each side proves it holds KEY, which only
 * the two ends of the mutual-TLS request know. Each record is authenticated by its GCM tag (bound
 * to app, volume, block and batch) and by the keyed MAC of its plaintext, and the point's digest
 * covers every block, as over TLS. What an observer of the TCP stream sees that TLS hid: the frame
 * heads (block numbers, batch numbers, record lengths).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Request header (reader: KEY) and answer header (gateway: PORT TICKET). */
export const BULK_HEADER = 'x-lifeboat-bulk';
export const BULK_MAGIC = Buffer.from('LBREC1\r\n', 'latin1');
export const BULK_KEY_BYTES = 32;
export const TICKET_BYTES = 16;
const PROOF_BYTES = 32;
/** What the reader sends first: magic, ticket, proof. */
export const HELLO_BYTES = BULK_MAGIC.length + TICKET_BYTES + PROOF_BYTES;
/** What the gateway answers before the body: proof, status u16, length u64. */
export const ANSWER_BYTES = PROOF_BYTES + 2 + 8;
/** A ticket not used within this long is dropped. */
export const TICKET_MS = 30_000;

export type BulkSide = 'reader' | 'gateway';

/** HMAC-SHA256 under the request's key, naming the side that proves and the ticket. */
export function bulkProof(key: Buffer, side: BulkSide, ticket: Buffer): Buffer {
  return createHmac('sha256', key).update(`lifeboat-bulk-v1 ${side}\0`).update(ticket).digest();
}

export function proofMatches(key: Buffer, side: BulkSide, ticket: Buffer, proof: Buffer): boolean {
  return proof.length === PROOF_BYTES && timingSafeEqual(bulkProof(key, side, ticket), proof);
}

export function helloOf(key: Buffer, ticket: Buffer): Buffer {
  return Buffer.concat([BULK_MAGIC, ticket, bulkProof(key, 'reader', ticket)]);
}

/** The gateway's answer head: its proof, the status, and the body's length. */
export function answerOf(key: Buffer, ticket: Buffer, status: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(ANSWER_BYTES);
  bulkProof(key, 'gateway', ticket).copy(out, 0);
  out.writeUInt16BE(status, PROOF_BYTES);
  out.writeBigUInt64BE(BigInt(length), PROOF_BYTES + 2);
  return out;
}

/** Reads an answer head (ANSWER_BYTES); undefined when its proof is not the gateway's. */
export function readAnswer(
  key: Buffer,
  ticket: Buffer,
  head: Buffer,
): { status: number; length: number } | undefined {
  if (!proofMatches(key, 'gateway', ticket, head.subarray(0, PROOF_BYTES))) return undefined;
  return {
    status: head.readUInt16BE(PROOF_BYTES),
    length: Number(head.readBigUInt64BE(PROOF_BYTES + 2)),
  };
}

/** `PORT TICKET` as the gateway answers it; undefined when malformed. */
export function parseOffer(value: string): { port: number; ticket: Buffer } | undefined {
  const m = /^(\d{1,5}) ([0-9a-f]{32})$/.exec(value.trim());
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, ticket: Buffer.from(m[2] as string, 'hex') };
}

/** The reader's key from its request header; undefined when malformed. */
export function parseKey(value: string | string[] | undefined): Buffer | undefined {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) return undefined;
  return Buffer.from(value, 'hex');
}
