/** Who `dr chat` acts as: the operating-system user who runs it; `--as` only where the home allows it. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../core/config.js';
import { DrError } from '../core/errors.js';
import { DEMO_APP } from './demo/prepare-demo.js';

export interface ConsoleIdentity {
  /** The name after `console:` in the actor id. */
  person: string;
  /** Said on the terminal when `--as` is used: why it was allowed. */
  note?: string;
  /** Whether this console may switch person (`--as`, and `as <person>` inside it). */
  switchAllowed: boolean;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The console's person: the login name (lower-cased, as `dr init` writes it into dr.yaml), mapped
 * to a person through the `console:<name>` ids under `people:`. `--as` picks another name only in
 * the demo home (made by `dr up --demo`) or where dr.yaml sets `console: { allowAs: true }`, and
 * says so; elsewhere it is refused, so that one person cannot approve twice under two names.
 */
export function consoleIdentity({
  config,
  home,
  login,
  as,
}: {
  config: Pick<Config, 'console' | 'apps'>;
  home: string;
  /** The operating-system user's login name. */
  login: string;
  /** `--as`, when given. */
  as?: string;
}): ConsoleIdentity {
  if (as !== undefined && !NAME.test(as)) {
    throw new DrError(`--as ${JSON.stringify(as)} is not a person's name`, {
      code: 'usage',
      subject: '--as',
      remedy: 'use letters, digits, ., _ and - (the name under people: in dr.yaml)',
    });
  }
  const self = login.toLowerCase();
  if (!NAME.test(self)) {
    throw new DrError(
      `your login name ${JSON.stringify(login)} cannot be a console identity (console:<name>)`,
      {
        code: 'usage',
        subject: 'dr chat',
        remedy:
          'run dr chat as a user whose login name is letters, digits, ., _ and -, or chat from Slack or DingTalk',
      },
    );
  }
  const switchAllowed = config.console.allowAs || isDemoHome(config, home);
  if (as === undefined || as === self) return { person: self, switchAllowed };
  if (config.console.allowAs) {
    return {
      switchAllowed,
      person: as,
      note: `acting as console:${as} (--as, allowed by console.allowAs in dr.yaml: whoever runs dr chat here may act as anyone)`,
    };
  }
  if (isDemoHome(config, home)) {
    return {
      switchAllowed,
      person: as,
      note: `acting as console:${as} (--as is allowed in the demo home only; in any other home the console acts as your login name, console:${self})`,
    };
  }
  throw new DrError(
    `--as ${as} is refused: the console acts as the operating-system user who runs it (console:${self})`,
    {
      code: 'usage',
      subject: '--as',
      remedy: `log in as that person to act as them, or chat from Slack or DingTalk; to let one terminal act for everyone, an administrator sets \`console: { allowAs: true }\` in ${join(home, 'dr.yaml')}`,
    },
  );
}

/** The home `dr up --demo` made: the demo app configured and its files in DR_HOME/demo. */
export function isDemoHome(config: Pick<Config, 'apps'>, home: string): boolean {
  return config.apps[DEMO_APP] !== undefined && existsSync(join(home, 'demo'));
}
