/** The agent's settings, resolved once from dr.yaml and the command line; every default comes from config. */
import { join } from 'node:path';
import { type AppConfig, findApp, type LoadedConfig } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import { homePaths } from '../../core/home.js';
import { parseDuration } from '../../core/units.js';
import type { TraceSettings, TrackerChoice } from './volume-tracking.js';

/** What one agent runs with; built by `resolveAgentSettings`, never defaulted further down. */
export interface AgentSettings {
  app: string;
  appConfig: AppConfig;
  /** This app's folder under DR_HOME/state/agents. */
  stateDir: string;
  /**
   * The cycle period: a cycle starts every `intervalMs` (a cycle that takes longer is followed by
   * the next at once). From `agent.interval` in dr.yaml (1 s) or `--interval`.
   */
  intervalMs: number;
  /**
   * How often the agent heartbeats, and asks the gateway whether a paused or failed-over app may
   * replicate again: the interval, held between 1 s and 5 s.
   */
  pollMs: number;
  /** A batch is sent once its records pass this many bytes (`agent.batchSize`). */
  batchBytes: number;
  /** Batches on the wire at once, awaiting acknowledgement. */
  inFlight: number;
  /** How changes are found: block tracing, scanning, or tracing where possible. */
  tracker: TrackerChoice;
  trace: TraceSettings;
  /** Read every block, holes and free space too (`agent.fullCopy` or `--full-copy`). */
  fullCopy: boolean;
}

/** What the command line may set over dr.yaml, as typed. */
export interface AgentOverrides {
  /** `--interval` text, like 300ms or 5s. */
  interval?: string | undefined;
  /** `--tracker`. */
  tracker?: string | undefined;
  /** Where tracefs is and its buffer size (from the environment). */
  trace?: TraceSettings | undefined;
  /** `--full-copy`. */
  fullCopy?: boolean | undefined;
}

/** The shortest cycle period: below it the agent would do little but ask the gateway. */
export const MIN_INTERVAL_MS = 100;
/** Batches in flight: enough to keep a long link busy, few enough to bound memory. */
export const IN_FLIGHT = 4;

const TRACKERS: readonly TrackerChoice[] = ['auto', 'trace', 'scan'];

/** Heartbeats and protection polls: every interval, but no more than once a second nor less than every 5 s. */
export function pollPeriod(intervalMs: number): number {
  return Math.min(Math.max(intervalMs, 1000), 5000);
}

/**
 * Resolves the settings of the agent of `app`: dr.yaml's `agent:` section (validated, with its
 * defaults, when the config was read) under the command line's overrides. A bad override is
 * refused naming the flag and the remedy.
 */
export function resolveAgentSettings(
  config: LoadedConfig,
  app: string,
  overrides: AgentOverrides = {},
): AgentSettings {
  const appConfig = findApp(config, app);
  const intervalMs =
    overrides.interval === undefined ? config.agent.interval : parseDuration(overrides.interval);
  if (intervalMs === undefined || intervalMs < MIN_INTERVAL_MS) {
    const what =
      overrides.interval === undefined
        ? `agent.interval in dr.yaml (${config.agent.interval}ms)`
        : `--interval ${overrides.interval}`;
    throw new DrError(`${what} is not a duration of at least ${MIN_INTERVAL_MS}ms`, {
      code: 'usage',
      subject: overrides.interval === undefined ? 'agent.interval' : '--interval',
      remedy: 'write it like 1s, 5s or 1m',
    });
  }
  const tracker = overrides.tracker ?? config.agent.tracker;
  if (!TRACKERS.includes(tracker as TrackerChoice)) {
    throw new DrError(`--tracker ${tracker} is not a tracker`, {
      code: 'usage',
      subject: '--tracker',
      remedy: 'use auto, trace or scan',
    });
  }
  return {
    app,
    appConfig,
    stateDir: join(homePaths(config.home).stateDir, 'agents', app),
    intervalMs,
    pollMs: pollPeriod(intervalMs),
    batchBytes: config.agent.batchSize,
    inFlight: IN_FLIGHT,
    tracker: tracker as TrackerChoice,
    trace: overrides.trace ?? {},
    fullCopy: overrides.fullCopy ?? config.agent.fullCopy,
  };
}
