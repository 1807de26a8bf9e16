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
export interface Provider {
  readonly kind: 'local' | 'alicloud';
  launch(req: LaunchRequest): Promise<Launched>;
  /**
   * Checks a candidate point's system volume (`req.volumes`: that one only) before a failover
   * changes anything, so a refusal leaves replication running; resolves the warnings, throws
   * (e.g. `boot_blocked`) when the failover must not start. Providers with nothing to check leave it out.
   */
  preflight?(req: LaunchRequest): Promise<string[]>;
  health(server: Launched, o: { timeoutMs: number; signal: AbortSignal }): Promise<HealthResult>;
  /**
   * Stops the operation's server but keeps its disks (a failback's final cut); idempotent;
   * resolves whether a running server was stopped. Providers that cannot fail back leave it out.
   */
  stop?(opId: string, log: Logger): Promise<boolean>;
  /** Removes everything tagged with this operation id; idempotent; resolves with what it removed. */
  destroy(opId: string, log: Logger): Promise<string[]>;
  /** Operation ids that still own resources (for cleanup after a crash). */
  leftovers(): Promise<string[]>;
}
