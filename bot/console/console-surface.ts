// The chat grammar in a terminal (`dr chat`, `dr up`): a line in, the reply out, notices printed.
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { DrError } from '../../core/errors.js';
import type { HttpRoute } from '../../core/http-route.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { ControlPlane, Notice } from '../../engine/contract.js';
import { answer } from '../answer.js';
import type { ChatSurface } from '../chat-surface.js';
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
  /**
   * The people this console may act as (those with a `console:` id in dr.yaml), each with their
   * groups: named in the greeting and in `help`, so approvals can be tried from one terminal.
   */
  people?: ConsolePerson[];
  /**
   * Whether `as <person>` may switch who is typing: only where `--as` would be allowed (the demo
   * home, or dr.yaml's `console.allowAs`), so one person cannot approve twice under two names.
   */
  allowSwitch?: boolean;
}

export interface ConsolePerson {
  name: string;
  groups: string[];
}

export const PERSON = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The chat grammar in a terminal: a line in, the reply out; notices for `console` printed as they
 * come, with buttons shown as the words to type. The surface of `dr up` and of tests.
 */
export class ConsoleSurface implements ChatSurface {
  readonly name = 'console';
  /** A terminal: nothing to mount. */
  readonly routes: HttpRoute[] = [];
  private reader: NoticeReader | undefined;
  private seq = 0;
  /** Who is typing now; `as <person>` changes it for the lines that follow. */
  private person: string;

  constructor(private readonly o: ConsoleSurfaceOptions) {
    checkPerson(o.person);
    this.person = o.person;
  }

  /** Starts printing notices for `console` (when it has a connection for them). */
  async start(): Promise<void> {
    if (!this.o.noticeRedis || this.reader) return;
    // Each terminal sees every notice: a consumer group of its own, removed when it closes.
    const reader = new NoticeReader({
      redis: this.o.noticeRedis,
      ...(this.o.prefix ? { prefix: this.o.prefix } : {}),
      group: `bot:console:${hostname()}:${process.pid}`,
      consumer: 'console',
      accepts: (n) => n.targets.includes('console'),
      handle: async (n) => this.postNotice(n),
      dropGroupOnClose: true,
      ...(this.o.log ? { log: this.o.log } : {}),
    });
    await reader.start();
    this.reader = reader;
  }

  /** Stops printing notices. */
  async stop(): Promise<void> {
    const reader = this.reader;
    this.reader = undefined;
    await reader?.close();
  }

  /** A terminal has no message to update: every notice is printed as it comes. */
  async postNotice(notice: Notice): Promise<void> {
    this.print(noticeText(notice));
  }

  /** A printed line cannot change: the newer state is printed below it. */
  async updateMessage(_target: string, _ref: string, notice: Notice): Promise<void> {
    this.print(noticeText(notice));
  }

  /** An approval prints with its buttons shown as the words to type. */
  async askApproval(notice: Notice): Promise<void> {
    this.print(noticeText(notice));
  }

  /** Runs until the input ends or `exit` / `quit` is typed. */
  async run(): Promise<void> {
    const { output } = this.o;
    await this.start();
    const lines = createInterface({ input: this.o.input, terminal: false });
    const prompt = () => {
      if (this.o.prompt) output.write('dr> ');
    };
    this.print(
      `Lifeboat console as ${this.person} (console:${this.person}). Type \`help\` for the commands, \`exit\` to leave.`,
    );
    const others = this.switchHint();
    if (others) this.print(others);
    prompt();
    try {
      for await (const line of lines) {
        const text = line.trim();
        if (text === 'exit' || text === 'quit') break;
        const own = text === '' ? undefined : this.consoleCommand(text);
        if (own !== undefined) this.print(own);
        else if (text !== '') {
          const reply = await answer(
            this.o.plane,
            {
              text,
              actor: `console:${this.person}`,
              surface: 'console',
              channel: 'console',
              id: `console:${hostname()}:${process.pid}:${++this.seq}`,
            },
            { log: this.o.log ?? silentLog },
          );
          this.print(plainText(reply));
          if (reply.report) this.print(NO_PICTURES(reply.report.subject));
          if (/^help\s*$/i.test(text)) this.print(this.consoleHelp());
        }
        prompt();
      }
    } finally {
      lines.close();
      await this.stop();
    }
  }

  /** The console's own words (`whoami`, `as <person>`), which only a terminal needs; else undefined. */
  private consoleCommand(text: string): string | undefined {
    const [word, name, ...rest] = text.split(/\s+/);
    if (word === 'whoami' && name === undefined) {
      const groups = this.o.people?.find((p) => p.name === this.person)?.groups ?? [];
      const hint = this.switchHint();
      return `You are ${this.person} (console:${this.person})${groups.length ? `, in ${groups.join(', ')}` : ''}.${hint ? ` ${hint}` : ''}`;
    }
    if (word !== 'as') return undefined;
    if (this.o.allowSwitch !== true)
      return `Switching person is refused: this console acts as your login (console:${this.person}). It is allowed in the demo home, or where an administrator sets \`console: { allowAs: true }\` in dr.yaml.`;
    if (name === undefined || rest.length > 0 || !PERSON.test(name))
      return 'Usage: `as <person>`, a name under people: in dr.yaml (like `as alice`).';
    const known = this.o.people;
    if (known && known.length > 0 && !known.some((p) => p.name === name))
      return `No person named ${name} has a console: id in dr.yaml. Use one of: ${known.map((p) => p.name).join(', ')}.`;
    this.person = name;
    return `You are ${name} now (console:${name}); what you type acts as ${name}.`;
  }

  /** Who else this console can be, for the greeting and `whoami`. */
  private switchHint(): string | undefined {
    if (this.o.allowSwitch !== true) return undefined;
    const others = (this.o.people ?? []).filter((p) => p.name !== this.person);
    if (others.length === 0) return undefined;
    const listed = others
      .map((p) => (p.groups.length ? `${p.name} (${p.groups.join(', ')})` : p.name))
      .join(', ');
    return `Type \`as <person>\` to act as someone else: ${listed}. An approval must come from someone other than the requester.`;
  }

  private consoleHelp(): string {
    return [
      'On this console:',
      `  whoami         who you are (now ${this.person})`,
      ...(this.o.allowSwitch === true
        ? [
            '  as <person>    act as someone else from dr.yaml, e.g. to approve a failover you did not ask for',
          ]
        : []),
      '  exit           leave the console',
    ].join('\n');
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
  return `\n[${n.kind}] ${mark}${plainText(n)}${n.report ? `\n${NO_PICTURES(n.report.subject)}` : ''}`;
}

/** What the console says in place of a report's picture. */
const NO_PICTURES = (app: string) =>
  `(the console shows no pictures: \`dr report ${app} --out report.png\` draws this report)`;
