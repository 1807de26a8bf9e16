// The interface every chat surface (Slack, DingTalk, the console) implements, and how one is started.
import type { Redis } from 'ioredis';
import type { HttpRoute } from '../core/http-route.js';
import type { Logger } from '../core/log.js';
import type { ControlPlane, Notice } from '../engine/contract.js';

/**
 * A chat platform Lifeboat talks through. It only translates and acknowledges: commands in go to
 * the control plane, notices out are posted, and a notice with the same key updates its message.
 */
export interface ChatSurface {
  /** The target prefix it serves: notices for `slack:C123` go to the surface named `slack`. */
  readonly name: string;
  /** HTTP routes for `dr serve` to mount (Slack's `/slack/events`); none for a socket or stream. */
  readonly routes: HttpRoute[];
  /** Connects, checks its credentials (a clear error if refused) and starts showing notices. */
  start(): Promise<void>;
  /** Stops reading notices and commands; work already acknowledged gets a bounded time to finish. */
  stop(): Promise<void>;
  /** Shows a notice in each of its targets on this surface: a new message, or its key's message updated. */
  postNotice(notice: Notice): Promise<void>;
  /** Changes a message this surface posted (`ref` as the post returned it) to show `notice`. */
  updateMessage(target: string, ref: string, notice: Notice): Promise<void>;
  /** Asks for an approval: the `approval.requested` notice with its buttons, where people can press them. */
  askApproval(notice: Notice): Promise<void>;
}

/** What `dr serve` hands each surface it starts. */
export interface SurfaceContext {
  plane: ControlPlane;
  /** Opens a named Redis connection (the surface's own; `startSurfaces` closes them). */
  connect: (name: string) => Promise<Redis>;
  prefix?: string;
  /** Surface-qualified admin channels from dr.yaml (for a surface's own "I am down" notice). */
  adminTargets: string[];
  log: Logger;
}

/**
 * One chat platform as `dr serve` sees it: whether its credentials are in the environment, and how
 * to build it. A new surface is a folder with a `ChatSurface` and one of these, listed in
 * `bot/start-surfaces.ts`.
 */
export interface SurfaceAdapter {
  /** As people read it: `Slack`. */
  readonly title: string;
  /** Off (and why), or on: the line `dr serve` prints and how to build the surface. */
  configure(
    env: NodeJS.ProcessEnv,
  ): { off: string } | { line: string; create(ctx: SurfaceContext): Promise<ChatSurface> };
}
