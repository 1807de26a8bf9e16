// demo-web's volume: a fixed-size image of page-view records in a ring, one record per slot, each
// with a digest so a torn or foreign slot is found. Shared by the web front and its check; only
// Node's own modules, like the other demo scripts.
import { createHash } from 'node:crypto';

/** Bytes per record slot, and slots in the image (1 MiB). */
export const SLOT = 128;
export const SLOTS = 8192;
export const WEB_IMAGE_SIZE = SLOT * SLOTS;

/** One page view: its number (from 1), when, and the newest order the shop showed then (0: none). */
export interface View {
  seq: number;
  timeMs: number;
  orderId: number;
}

const digest = (body: string) => createHash('sha256').update(body).digest('hex').slice(0, 16);

/** The slot's bytes of a view: `seq time order digest`, space-padded, ending in a newline. */
export function encodeView(v: View): Buffer {
  const body = `${v.seq} ${v.timeMs} ${v.orderId}`;
  const line = `${body} ${digest(body)}`;
  const out = Buffer.alloc(SLOT, 0x20);
  out.write(line, 0, 'ascii');
  out[SLOT - 1] = 0x0a;
  return out;
}

/** Where a view goes in the image. */
export const slotOffset = (seq: number) => ((seq - 1) % SLOTS) * SLOT;

/**
 * Reads every slot of an image: the views found, and the slots that are neither empty (all zero)
 * nor a view whose digest holds (a torn write, or not a demo-web image at all).
 */
export function readViews(image: Buffer): { views: View[]; bad: number[] } {
  const views: View[] = [];
  const bad: number[] = [];
  for (let i = 0; i + SLOT <= image.length; i += SLOT) {
    const slot = image.subarray(i, i + SLOT);
    if (slot.every((b) => b === 0)) continue;
    const m = /^(\d+) (\d+) (\d+) ([0-9a-f]{16}) *\n$/.exec(slot.toString('ascii'));
    if (!m || digest(`${m[1]} ${m[2]} ${m[3]}`) !== m[4]) {
      bad.push(i / SLOT);
      continue;
    }
    views.push({ seq: Number(m[1]), timeMs: Number(m[2]), orderId: Number(m[3]) });
  }
  return { views: views.sort((a, b) => a.seq - b.seq), bad };
}

/** Whether the views are one unbroken run of numbers (the ring keeps the newest SLOTS). */
export function unbroken(views: View[]): boolean {
  return views.every((v, i) => i === 0 || v.seq === (views[i - 1]?.seq ?? 0) + 1);
}
