/** The words a person reads for an operation's finished step, the same in chat and on the command line. */

/**
 * A finished step (an event with progress 1) as words, or undefined for a step whose end is
 * reported under another name: `materialise` reaches 1 just before `materialised` arrives, and
 * two lines for one step read as two steps.
 */
export function stepLabel(step: string): string | undefined {
  return LABELS[step] ?? (IN_PROGRESS.has(step) ? undefined : step.replaceAll('-', ' '));
}

const IN_PROGRESS = new Set(['materialise', 'launch', 'health', 'hydrate', 'verify', 'retrying']);

const LABELS: Record<string, string> = {
  preflighted: 'system disk checked before anything changed',
  'replication-stopped': 'replication stopped',
  'drill-ended': 'a kept drill server of the app ended first',
  'drill-not-ended': 'a kept drill server of the app could NOT be ended: it still runs',
  resolved: 'recovery point chosen',
  materialised: 'volumes materialised',
  launched: 'server launched',
  healthy: 'health check passed',
  'hydrated-25': 'a quarter of the volumes local',
  'hydrated-50': 'half of the volumes local',
  'hydrated-75': 'three quarters of the volumes local',
  hydrated: 'volumes hydrated: the recovery no longer needs the gateway',
  verified: 'every block verified',
  found: 'failed-over copy found',
  'way-home-started': 'agent started on the recovered server (the way home)',
  'way-home-continuous': 'the recovered server is copied home; changes follow',
  precopied: 'changes copied back while it runs',
  frozen: 'recovered server frozen for the final copy (stopped, where nothing could be frozen)',
  stopped: 'recovered server stopped',
  synced: 'final changes copied back',
  switched: 'original site is production again',
  resumed: 'resumed by another worker',
};
