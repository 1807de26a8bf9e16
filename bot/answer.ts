import { errorMessage } from '../core/errors.js';
import { type Logger, silentLog } from '../core/log.js';
import type { Command, ControlPlane, Reply, Surface } from '../engine/contract.js';
import { helpLines, parse } from './grammar.js';

/** What a surface heard: the words typed (without `/dr`) or a button's words, and who and where. */
export interface Heard {
  text: string;
  /** Surface-qualified person: `slack:U123`, `dingtalk:<staffId>`, `console:alice`. */
  actor: string;
  surface: Surface;
  /** Surface-qualified conversation, e.g. `slack:C123`. */
  channel?: string;
  /** The delivery's id on its surface, so a redelivery is recognised. */
  id: string;
}

/** How people type a command on each surface, for help and hints. */
const PREFIX: Record<Surface, string> = {
  slack: '/dr ',
  dingtalk: 'dr ',
  console: '',
  cli: 'dr ',
  scheduler: '',
};

/**
 * Parses what was heard with the grammar and asks the control plane. Help and bad input are
 * answered here; everything else by the engine. Never throws: a failure becomes a reply.
 */
export async function answer(
  plane: ControlPlane,
  heard: Heard,
  { log = silentLog, now = Date.now }: { log?: Logger; now?: () => number } = {},
): Promise<Reply> {
  const parsed = parse(heard.text);
  const prefix = PREFIX[heard.surface];
  if (!parsed.ok) {
    const hint = parsed.hint?.replace('Type `', `Type \`${prefix}`);
    return {
      ok: false,
      summary: parsed.error,
      ...(hint ? { details: [hint] } : {}),
      private: true,
    };
  }
  if (parsed.verb === 'help') {
    const topic = parsed.args.words?.[0];
    return {
      ok: true,
      summary: topic
        ? `\`${prefix}${topic}\``
        : prefix
          ? `Lifeboat commands (type \`${prefix}<command>\`):`
          : 'Lifeboat commands:',
      details: helpLines(topic),
      private: true,
    };
  }
  const command: Command = {
    id: heard.id,
    actor: heard.actor,
    surface: heard.surface,
    verb: parsed.verb,
    args: parsed.args,
    at: new Date(now()).toISOString(),
    ...(heard.channel ? { channel: heard.channel } : {}),
    ...(parsed.app ? { app: parsed.app } : {}),
  };
  try {
    return await plane.submit(command);
  } catch (err) {
    log.error(
      { err: errorMessage(err), verb: command.verb, actor: command.actor },
      'control plane failed',
    );
    return {
      ok: false,
      summary: `Lifeboat could not handle \`${parsed.verb}\` just now (${errorMessage(err)}). Try again in a moment; \`${prefix}history\` shows what happened.`,
      private: true,
    };
  }
}
