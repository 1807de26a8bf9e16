/** A small, fast, seedable generator (mulberry32): the same seed gives the same run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULT_KINDS = [
  'agent-kill',
  'gateway-kill',
  'writer-restart',
  'redis-restart',
  'jitter',
  'bandwidth',
  'partition',
  'reset',
  'stall',
  'disk-full',
  'agent-kill-stalled',
  'gateway-kill-full',
  'kill-storm',
] as const;
/**
 * Faults of the object store (`--store s3`): kill -9 of radosgw or of the OSD (restarted after
 * the fault), and the gateway machine lost (killed, its local folder deleted, started on the
 * empty folder). Kept apart from FAULT_KINDS so a seed replays the same folder-store run as before.
 */
export const OBJECT_STORE_FAULTS = ['rgw-kill', 'osd-kill', 'gateway-machine-loss'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | (typeof OBJECT_STORE_FAULTS)[number];

/** One fault of the schedule: what, for how long, and its knobs (all drawn from the seed). */
export interface Fault {
  round: number;
  kind: FaultKind;
  /** How long the fault lasts (or how long the killed part stays down), ms. */
  ms: number;
  latencyMs?: number;
  jitterMs?: number;
  /** The bandwidth cap as a fraction of the write rate measured before the run. */
  bandwidthShare?: number;
  /** Connections reset this many times, spread over the fault. */
  resets?: number;
  /** A stall or partition ends by resetting every connection: what was held back is lost, not late. */
  endWithReset?: boolean;
  /** A kill storm: which part dies each time, and how long after the previous (re)start. */
  kills?: Array<{ part: 'agent' | 'gateway'; afterMs: number }>;
}

/**
 * The faults of a run, one per round. Every kind comes up once before any
 * repeats (in a seeded order), then kinds are drawn at random, so short runs
 * still cover every kind.
 */
export function faultSchedule(
  seed: number,
  rounds: number,
  kinds: readonly FaultKind[] = FAULT_KINDS,
): Fault[] {
  const random = seededRandom(seed);
  const between = (lo: number, hi: number) => Math.round(lo + (hi - lo) * random());
  const order = [...kinds];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as FaultKind, order[i] as FaultKind];
  }
  const out: Fault[] = [];
  for (let round = 1; round <= rounds; round++) {
    const kind =
      round <= order.length
        ? (order[round - 1] as FaultKind)
        : (kinds[Math.floor(random() * kinds.length)] as FaultKind);
    const fault: Fault = { round, kind, ms: between(1000, 4000) };
    if (kind === 'jitter') {
      fault.ms = between(3000, 6000);
      fault.latencyMs = between(5, 40);
      fault.jitterMs = between(20, 150);
    }
    if (kind === 'bandwidth') {
      fault.ms = between(3000, 6000);
      fault.bandwidthShare = 0.2 + 0.3 * random();
    }
    if (kind === 'reset') fault.resets = between(1, 4);
    if (kind === 'stall' || kind === 'partition') fault.endWithReset = random() < 0.5;
    if (kind === 'kill-storm') {
      fault.kills = Array.from({ length: between(3, 6) }, () => ({
        part: random() < 0.6 ? ('agent' as const) : ('gateway' as const),
        afterMs: between(200, 2500),
      }));
      fault.ms = fault.kills.reduce((n, k) => n + k.afterMs, 0);
    }
    out.push(fault);
  }
  return out;
}
