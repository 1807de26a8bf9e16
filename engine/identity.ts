import type { Config } from '../core/config.js';

/** Who an actor is in dr.yaml. Unknown actors may only read. */
export interface Identity {
  actor: string;
  /** The person's name under `people:`; undefined when the actor is unknown. */
  person?: string;
  groups: string[];
  known: boolean;
}

/** The actor scheduled commands come from; it is known, belongs to no group, and passes policies like anyone. */
export const SCHEDULER = 'scheduler';

/** Resolves `slack:U…`, `dingtalk:…`, `console:…`, `cli:<name>` (the local admin) or `scheduler`. */
export function resolveIdentity(config: Pick<Config, 'people' | 'admin'>, actor: string): Identity {
  if (actor === SCHEDULER) return { actor, person: SCHEDULER, groups: [], known: true };
  if (actor.startsWith('cli:')) {
    // The CLI acts as the local administrator only; another cli: name is not trusted.
    const name = actor.slice(4);
    const p = config.admin === name ? config.people[name] : undefined;
    return p
      ? { actor, person: name, groups: p.groups, known: true }
      : { actor, groups: [], known: false };
  }
  for (const [name, p] of Object.entries(config.people)) {
    if (p.ids.includes(actor)) return { actor, person: name, groups: p.groups, known: true };
  }
  return { actor, groups: [], known: false };
}

/** Every group named under `people:`. */
export function knownGroups(config: Pick<Config, 'people'>): Set<string> {
  return new Set(Object.values(config.people).flatMap((p) => p.groups));
}
