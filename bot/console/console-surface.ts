import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { DrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { ControlPlane, Notice } from '../../engine/contract.js';
import { answer } from '../answer.js';
import { NoticeReader } from '../notice-reader.js';
import { plainText, printable } from '../plain-text.js';

export interface ConsoleSurfaceOptions {
  plane: ControlPlane;
  /** Who is typing: the actor is `console:<person>`. */
  person: string;
  input: Readable;
  output: Writable;
  /** A connection of its own for notices to `console`; without it only replies are shown. */
  noticeRedis?: Redis;
  prefix?: string;
  /** Show a `dr> ` prompt (a terminal). */
  prompt?: boolean;
  log?: Logger;
}

export const PERSON = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The chat grammar in a terminal: a line in, the reply out; notices for `console` printed as they
 * come, with buttons shown as the words to type. The surface of `dr up` and of tests.
 */
export class ConsoleSurface {
  private reader: NoticeReader | undefined;
  private seq = 0;

  constructor(private readonly o: ConsoleSurfaceOptions) {
    checkPerson(o.person);
  }

  /** Runs until the input ends or `exit` / `quit` is typed. */
  async run(): Promise<void> {
    const { output } = this.o;
    if (this.o.noticeRedis) {
      // Each terminal sees every notice: a consumer group of its own, removed when it closes.
      this.reader = new NoticeReader({
        redis: this.o.noticeRedis,
        ...(this.o.prefix ? { prefix: this.o.prefix } : {}),
        group: `bot:console:${hostname()}:${process.pid}`,
        consumer: 'console',
        accepts: (n) => n.targets.includes('console'),
        handle: async (n) => this.print(noticeText(n)),
        dropGroupOnClose: true,
        ...(this.o.log ? { log: this.o.log } : {}),
      });
      await this.reader.start();
    }
    const lines = createInterface({ input: this.o.input, terminal: false });
    const prompt = () => {
      if (this.o.prompt) output.write('dr> ');
    };
    this.print(
      `Lifeboat console as ${this.o.person}. Type \`help\` for the commands, \`exit\` to leave.`,
    );
    prompt();
    try {
      for await (const line of lines) {
        const text = line.trim();
        if (text === 'exit' || text === 'quit') break;
        if (text !== '') {
          const reply = await answer(
            this.o.plane,
            {
              text,
              actor: `console:${this.o.person}`,
              surface: 'console',
              channel: 'console',
              id: `console:${hostname()}:${process.pid}:${++this.seq}`,
            },
            { log: this.o.log ?? silentLog },
          );
          this.print(plainText(reply));
        }
        prompt();
      }
    } finally {
      lines.close();
      await this.reader?.close();
    }
  }

  private print(text: string): void {
    this.o.output.write(`${printable(text)}\n`);
  }
}

/** A usage error unless `person` can be a console identity. */
export function checkPerson(person: string): void {
  if (!PERSON.test(person)) {
    throw new DrError(`--as ${JSON.stringify(person)} is not a person's name`, {
      code: 'usage',
      subject: '--as',
      remedy: 'use letters, digits, ., _ and - (the name under people: in dr.yaml)',
    });
  }
}

function noticeText(n: Notice): string {
  const mark = n.severity === 'critical' ? '!! ' : n.severity === 'warning' ? '! ' : '';
  return `\n[${n.kind}] ${mark}${plainText(n)}`;
}
