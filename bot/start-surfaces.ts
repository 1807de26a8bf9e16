import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import { type Logger, silentLog } from '../core/log.js';
import type { ControlPlane } from '../engine/contract.js';
import { dingTalkCredentials } from './dingtalk/dingtalk-credentials.js';
import type { DingTalkSurface } from './dingtalk/dingtalk-surface.js';
import { slackCredentials } from './slack/slack-credentials.js';
import type { SlackSurface } from './slack/slack-surface.js';

/** A route for `dr serve`'s HTTP server (the same shape as cli/http-server's Route). */
export type SurfaceRoute = (
  req: IncomingMessage,
  res: ServerResponse,
) => boolean | Promise<boolean>;

export interface StartSurfacesOptions {
  plane: ControlPlane;
  /** Opens a named Redis connection (each surface takes two: one blocks reading notices). */
  connect: (name: string) => Promise<Redis>;
  env?: NodeJS.ProcessEnv;
  prefix?: string;
  /** Surface-qualified admin channels from dr.yaml, for the DingTalk stream-down notice. */
  adminTargets?: string[];
  log?: Logger;
}

export interface Surfaces {
  slack?: SlackSurface;
  dingtalk?: DingTalkSurface;
  /** Routes to mount (`/slack/events` when Slack uses the HTTP receiver). */
  routes: SurfaceRoute[];
  /** One line per surface: on (and how) or off (and why), for `dr serve` to print. */
  lines: string[];
  close(): Promise<void>;
}

/**
 * Starts each chat surface whose credentials are in the environment; a surface without them stays
 * off and says why. Bolt and dingtalk-stream are loaded only for a surface that is on.
 */
export async function startSurfaces({
  plane,
  connect,
  env = process.env,
  prefix,
  adminTargets = [],
  log = silentLog,
}: StartSurfacesOptions): Promise<Surfaces> {
  const opened: Redis[] = [];
  const open = async (name: string) => {
    const r = await connect(name);
    opened.push(r);
    return r;
  };
  const surfaces: Surfaces = { routes: [], lines: [], close: async () => undefined };
  const closers: (() => Promise<void>)[] = [];
  surfaces.close = async () => {
    for (const c of closers.reverse()) await c();
    for (const r of opened) r.disconnect();
  };
  try {
    const slack = slackCredentials(env);
    if ('off' in slack) {
      surfaces.lines.push(`Slack: off (${slack.off})`);
    } else {
      const { SlackSurface } = await import('./slack/slack-surface.js');
      const surface = await SlackSurface.create({
        plane,
        credentials: slack,
        redis: await open('lifeboat-bot-slack'),
        noticeRedis: await open('lifeboat-bot-slack-notices'),
        ...(prefix ? { prefix } : {}),
        log,
      });
      await surface.start();
      closers.push(() => surface.close());
      surfaces.slack = surface;
      if (surface.route) surfaces.routes.push(surface.route);
      surfaces.lines.push(
        slack.mode === 'socket'
          ? 'Slack: on (Socket Mode)'
          : 'Slack: on (HTTP receiver at /slack/events)',
      );
    }
    const ding = dingTalkCredentials(env);
    if ('off' in ding) {
      surfaces.lines.push(`DingTalk: off (${ding.off})`);
    } else {
      const { DingTalkSurface } = await import('./dingtalk/dingtalk-surface.js');
      const surface = await DingTalkSurface.create({
        plane,
        credentials: ding,
        redis: await open('lifeboat-bot-dingtalk'),
        noticeRedis: await open('lifeboat-bot-dingtalk-notices'),
        ...(prefix ? { prefix } : {}),
        adminTargets,
        log,
      });
      await surface.start();
      closers.push(() => surface.close());
      surfaces.dingtalk = surface;
      surfaces.lines.push(
        `DingTalk: on (stream mode${ding.cardTemplateId ? ', interactive cards' : ', markdown messages: DINGTALK_CARD_TEMPLATE_ID is not set'})`,
      );
    }
  } catch (err) {
    await surfaces.close();
    throw err;
  }
  return surfaces;
}
