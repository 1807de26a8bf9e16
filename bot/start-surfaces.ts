// Starts every chat surface whose credentials are in the environment: a loop over the adapters.
import type { Redis } from 'ioredis';
import type { HttpRoute } from '../core/http-route.js';
import { type Logger, silentLog } from '../core/log.js';
import type { ControlPlane } from '../engine/contract.js';
import type { ChatSurface, SurfaceAdapter } from './chat-surface.js';
import { dingTalkAdapter } from './dingtalk/dingtalk-adapter.js';
import { slackAdapter } from './slack/slack-adapter.js';

/** The surfaces `dr serve` knows, in the order their lines are printed. A new one is added here. */
export const SURFACE_ADAPTERS: readonly SurfaceAdapter[] = [slackAdapter, dingTalkAdapter];

export interface StartSurfacesOptions {
  plane: ControlPlane;
  /** Opens a named Redis connection (each surface takes two: one blocks reading notices). */
  connect: (name: string) => Promise<Redis>;
  env?: NodeJS.ProcessEnv;
  prefix?: string;
  /** Surface-qualified admin channels from dr.yaml, for the DingTalk stream-down notice. */
  adminTargets?: string[];
  log?: Logger;
  /** The adapters to try (all of `SURFACE_ADAPTERS` by default). */
  adapters?: readonly SurfaceAdapter[];
}

export interface Surfaces {
  /** The surfaces that are on, started. */
  started: ChatSurface[];
  /** Routes to mount (`/slack/events` when Slack uses the HTTP receiver). */
  routes: HttpRoute[];
  /** One line per surface: on (and how) or off (and why), for `dr serve` to print. */
  lines: string[];
  close(): Promise<void>;
}

/**
 * Starts each chat surface whose credentials are in the environment; a surface without them stays
 * off and says why. A surface's library (Bolt, dingtalk-stream) is loaded only when it is on.
 */
export async function startSurfaces({
  plane,
  connect,
  env = process.env,
  prefix,
  adminTargets = [],
  log = silentLog,
  adapters = SURFACE_ADAPTERS,
}: StartSurfacesOptions): Promise<Surfaces> {
  const opened: Redis[] = [];
  const open = async (name: string) => {
    const r = await connect(name);
    opened.push(r);
    return r;
  };
  const surfaces: Surfaces = { started: [], routes: [], lines: [], close: async () => undefined };
  surfaces.close = async () => {
    for (const s of [...surfaces.started].reverse()) await s.stop();
    for (const r of opened) r.disconnect();
  };
  try {
    for (const adapter of adapters) {
      const on = adapter.configure(env);
      if ('off' in on) {
        surfaces.lines.push(`${adapter.title}: off (${on.off})`);
        continue;
      }
      const surface = await on.create({
        plane,
        connect: open,
        ...(prefix ? { prefix } : {}),
        adminTargets,
        log,
      });
      await surface.start();
      surfaces.started.push(surface);
      surfaces.routes.push(...surface.routes);
      surfaces.lines.push(`${adapter.title}: ${on.line}`);
    }
  } catch (err) {
    await surfaces.close();
    throw err;
  }
  return surfaces;
}
