/** The segment log's frame format: 'LSG1' | kind u8 | payloadLen u32 | payload | checksum u32. */
import { frameChecksum } from './frame-checksum.js';

/** A frame holding one agent batch, byte for byte as received. */
export const FRAME_BATCH = 1;
/** A frame holding records copied verbatim by compaction. */
export const FRAME_COPY = 2;
export const MAGIC = Buffer.from('LSG1');
/** 'LSG1' | kind u8 | payloadLen u32: a payload starts this far after its frame. */
export const FRAME_HEAD_BYTES = 4 + 1 + 4;
export const FRAME_TAIL_BYTES = 4;

export interface Frame {
  segment: number;
  /** Offset of the frame's first byte in its segment file. */
  start: number;
  kind: number;
  payload: Buffer;
}

/** Reads the frame at `pos`; `end` is where it ends (the segment size when that is unknown). */
export async function readFrame(
  read: (segment: number, offset: number, length: number) => Promise<Buffer>,
  segment: number,
  pos: number,
  size: number,
): Promise<{ frame?: Frame; problem?: string; end: number }> {
  const unknown = (problem: string) => ({ problem, end: size });
  if (size - pos < FRAME_HEAD_BYTES + FRAME_TAIL_BYTES) return unknown('frame cut short');
  const head = await read(segment, pos, FRAME_HEAD_BYTES);
  if (!head.subarray(0, 4).equals(MAGIC)) return unknown('no frame magic');
  const kind = head.readUInt8(4);
  if (kind !== FRAME_BATCH && kind !== FRAME_COPY) return unknown(`unknown frame kind ${kind}`);
  const len = head.readUInt32BE(5);
  const end = pos + FRAME_HEAD_BYTES + len + FRAME_TAIL_BYTES;
  if (end > size) return unknown('frame cut short');
  const body = await read(segment, pos + FRAME_HEAD_BYTES, len + FRAME_TAIL_BYTES);
  const payload = body.subarray(0, len);
  if (frameChecksum(payload) !== body.readUInt32BE(len))
    return { problem: 'frame checksum does not match', end };
  return { frame: { segment, start: pos, kind, payload }, end };
}

/** A frame's head and tail around a payload given in parts. */
export function frameEnds(
  kind: number,
  parts: readonly Uint8Array[],
  length: number,
): [Buffer, Buffer] {
  const head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  MAGIC.copy(head, 0);
  head.writeUInt8(kind, 4);
  head.writeUInt32BE(length, 5);
  const tail = Buffer.allocUnsafe(FRAME_TAIL_BYTES);
  tail.writeUInt32BE(frameChecksum(parts), 0);
  return [head, tail];
}

export function encodeFrame(kind: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEAD_BYTES + payload.length + FRAME_TAIL_BYTES);
  MAGIC.copy(frame, 0);
  frame.writeUInt8(kind, 4);
  frame.writeUInt32BE(payload.length, 5);
  frame.set(payload, FRAME_HEAD_BYTES);
  frame.writeUInt32BE(frameChecksum(payload), FRAME_HEAD_BYTES + payload.length);
  return frame;
}
