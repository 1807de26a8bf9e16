/** The control plane: commands in, decisions and notices out (see engine/contract.ts). */

import type { Engine, EngineOptions } from './create-engine.js';

export * from './contract.js';
export type { Engine, EngineOptions } from './create-engine.js';
export { readNotices } from './notice-stream.js';

/** Creates the engine; bullmq and json-rules-engine load here, not when this module is imported. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const { createEngine: create } = await import('./create-engine.js');
  return create(options);
}
