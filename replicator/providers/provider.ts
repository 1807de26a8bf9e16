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
/** The recovered server of a failover and the app's volumes, for its way home. */
export interface WayHomeRequest {
  /** The failover that made the server. */
  failoverOpId: string;
  server: Launched;
  app: string;
  /** The app's volumes in order (the first is the system volume), each with its size at the failover. */
  volumes: { name: string; size: number }[];
  signal: AbortSignal;
  log: Logger;
}

/**
 * Reverse replication from a server the worker cannot read directly (a cloud instance): an agent
 * started on it replicates the app home under `reverseAppId(app)`.
 */
export interface WayHome {
  /** Starts the agent on the server (idempotent: a running one is kept); resolves what the server said. */
  start(req: WayHomeRequest): Promise<string>;
  /**
   * Runs the app's fence command on the server (stops its writes), stops the agent, and has it
   * take one last cut; resolves the server's output. The gateway's newest point of the way home
   * then holds everything the server wrote.
   */
  finalCut(req: WayHomeRequest & { fence?: string }): Promise<string>;
  /** The agent's last log lines on the server, to explain a way home that does not move. */
  agentLog(req: WayHomeRequest): Promise<string>;
  /** Starts the stopped server again (a failback that failed after stopping it). */
  restart(failoverOpId: string, log: Logger): Promise<void>;
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
  /** Providers whose failback goes through reverse replication (alicloud). */
  wayHome?: WayHome;
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
