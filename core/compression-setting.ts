// The agent's wire compression as written in dr.yaml (`agent.compression`): parsed once, here.

/** `lz4`; `zstd` with the level the agent adapts to the link; or `zstd:N`, the level pinned. */
export type CompressionSetting =
  | { codec: 'lz4' }
  | { codec: 'zstd'; level: 'auto' }
  | { codec: 'zstd'; level: number };

/** zstd's levels worth using per 64 KiB block: past 19 the memory grows and the ratio does not. */
export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 19;

/** Parses `lz4`, `zstd` or `zstd:N` (N from 1 to 19); undefined for anything else. */
export function parseCompressionSetting(text: string): CompressionSetting | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'lz4') return { codec: 'lz4' };
  if (t === 'zstd' || t === 'zstd:auto') return { codec: 'zstd', level: 'auto' };
  const m = /^zstd:(\d{1,2})$/.exec(t);
  if (!m) return undefined;
  const level = Number(m[1]);
  return level >= ZSTD_MIN_LEVEL && level <= ZSTD_MAX_LEVEL ? { codec: 'zstd', level } : undefined;
}

/** The remedy every bad compression value gets. */
export const COMPRESSION_HINT = `write lz4, zstd (the level adapts to the link) or zstd:N with N from ${ZSTD_MIN_LEVEL} to ${ZSTD_MAX_LEVEL}`;

export function formatCompressionSetting(s: CompressionSetting): string {
  return s.codec === 'lz4' ? 'lz4' : s.level === 'auto' ? 'zstd' : `zstd:${s.level}`;
}
