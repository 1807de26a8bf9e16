import type { Logger } from '../../core/log.js';
export interface MaterialisedVolume {
  name: string /** raw image file of the volume at the point */;
  path: string;
  size: number;
}
export interface LaunchRequest {
  /** Operation id: every resource created is tagged lifeboat-op=<opId>, so leftovers of a crashed job are found. */
  opId: string;
  app: string;
  mode: 'drill' | 'failover';
  /** The first volume is the system volume. */
  volumes: MaterialisedVolume[];
  signal: AbortSignal;
  log: Logger;
  /** Progress of long steps, 0..1, with a short name: 'bootcheck', 'disks', 'copy', 'snapshot', 'image', 'instance'. */
  onStep?: (step: string, fraction: number) => void;
}
export interface Launched {
  provider: 'local' | 'alicloud' /** provider's server id */;
  id: string /** where its health check reaches it, if any */;
  endpoint?: string;
  details: Record<string, string>;
  /** What may keep the recovered server from booting or working (the bootability check), each with its remedy. */
  warnings?: string[];
}
export interface HealthResult {
  ok: boolean;
  output: string;
  ms: number;
}
/** How a recovered server was frozen for a failback's final copy. */
export interface FrozenServer {
  at: number;
  /** The provider's freeze hook ran. */
  hook: boolean;
  /** File systems frozen with fsfreeze (the server's mounts of its images). */
  mounts: string[];
}
export interface Provider {
  readonly kind: 'local' | 'alicloud';
  launch(req: LaunchRequest): Promise<Launched>;
  health(server: Launched, o: { timeoutMs: number; signal: AbortSignal }): Promise<HealthResult>;
  /**
   * Stops the operation's server but keeps its disks (a failback's final cut); idempotent;
   * resolves whether a running server was stopped. Providers that cannot fail back leave it out.
   */
  stop?(opId: string, log: Logger): Promise<boolean>;
  /**
   * Quiesces the operation's running server for a failback's final copy without stopping it (its
   * freeze hook, fsfreeze of its file systems); a later `stop` kills it before it writes again,
   * `thaw` lets it run on. Idempotent; resolves undefined when there is nothing to freeze (the
   * caller stops the server instead).
   */
  freeze?(opId: string, log: Logger): Promise<FrozenServer | undefined>;
  /** Undoes `freeze` (a failback that failed after it): the server runs on. Resolves whether it was frozen. */
  thaw?(opId: string, log: Logger): Promise<boolean>;
  /** Removes everything tagged with this operation id; idempotent; resolves with what it removed. */
  destroy(opId: string, log: Logger): Promise<string[]>;
  /** Operation ids that still own resources (for cleanup after a crash). */
  leftovers(): Promise<string[]>;
}
