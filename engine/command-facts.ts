import type { Config } from '../core/config.js';
import type { Command } from './contract.js';
import type { Facts } from './evaluate-policies.js';
import type { Identity } from './identity.js';

/** What the facts need to know about an app's state now; read from Redis by the engine. */
export interface AppState {
  /** Seconds the DR copy is behind; undefined when unknown. */
  rpoSeconds?: number;
  /** ms since epoch of the last successful drill; undefined when never. */
  lastDrillAt?: number;
  operationsInProgress: number;
}

/** The facts one command is judged on. Absent values stay absent, so no comparison passes on them. */
export function commandFacts(
  config: Pick<Config, 'apps'>,
  command: Pick<Command, 'verb' | 'app' | 'actor' | 'surface' | 'args'>,
  who: Identity,
  state: AppState,
  now: number,
): Facts {
  const app = command.app ? config.apps[command.app] : undefined;
  const facts: Facts = {
    verb: command.verb,
    now,
    actor: command.actor,
    person: who.person ?? '',
    known: who.known,
    groups: who.groups,
    surface: command.surface,
    emergency: command.args.emergency === true,
    dryRun: command.args.dryRun === true,
    operationsInProgress: state.operationsInProgress,
  };
  if (command.app) facts.app = command.app;
  if (app) {
    facts.tier = app.tier;
    facts.owners = app.owners;
    facts.isOwner = who.person !== undefined && app.owners.includes(who.person);
    facts.rpoObjectiveSeconds = app.rpoObjective / 1000;
  } else {
    facts.owners = [];
    facts.isOwner = false;
  }
  if (state.rpoSeconds !== undefined) facts.rpoSeconds = state.rpoSeconds;
  if (state.lastDrillAt !== undefined)
    facts.lastDrillAgeHours = Math.max(0, (now - state.lastDrillAt) / 3_600_000);
  return facts;
}
