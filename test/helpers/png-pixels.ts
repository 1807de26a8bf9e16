/** Decodes a PNG and counts the pixels in a region that are not the white background. */
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { expect } from 'vitest';

export interface PngFacts {
  width: number;
  height: number;
  /** Non-white pixels inside the box (fractions of width and height). */
  inked(box: { x0: number; y0: number; x1: number; y1: number }): number;
  /** Pixels of about this colour (each channel within 40) anywhere. */
  coloured(rgb: [number, number, number]): number;
}

export function readPng(bytes: Buffer): PngFacts {
  const png = PNG.sync.read(bytes);
  const at = (x: number, y: number) => {
    const i = (png.width * y + x) * 4;
    return [png.data[i] ?? 0, png.data[i + 1] ?? 0, png.data[i + 2] ?? 0] as const;
  };
  return {
    width: png.width,
    height: png.height,
    inked({ x0, y0, x1, y1 }) {
      let n = 0;
      for (let y = Math.floor(y0 * png.height); y < Math.floor(y1 * png.height); y++)
        for (let x = Math.floor(x0 * png.width); x < Math.floor(x1 * png.width); x++) {
          const [r, g, b] = at(x, y);
          if (r < 235 || g < 235 || b < 235) n++;
        }
      return n;
    },
    coloured([cr, cg, cb]) {
      let n = 0;
      for (let y = 0; y < png.height; y++)
        for (let x = 0; x < png.width; x++) {
          const [r, g, b] = at(x, y);
          if (Math.abs(r - cr) < 40 && Math.abs(g - cg) < 40 && Math.abs(b - cb) < 40) n++;
        }
      return n;
    },
  };
}

/**
 * The checks every drill report picture with drills passes: the PNG is the size the renderer
 * says, wide and tall enough, and both the RPO plot (upper part) and the drill bars (lower part)
 * carry ink. With REPORT_PNG set, the picture is also written there to look at.
 */
export function expectReportPicture(pic: { png: Buffer; width: number }): PngFacts {
  if (process.env.REPORT_PNG) writeFileSync(process.env.REPORT_PNG, pic.png);
  const png = readPng(pic.png);
  expect(png.width).toBe(pic.width);
  expect(png.width).toBeGreaterThan(1200);
  expect(png.height).toBeGreaterThan(600);
  expect(png.inked({ x0: 0.1, y0: 0.2, x1: 0.9, y1: 0.5 })).toBeGreaterThan(2000);
  expect(png.inked({ x0: 0.1, y0: 0.6, x1: 0.9, y1: 0.9 })).toBeGreaterThan(2000);
  return png;
}
