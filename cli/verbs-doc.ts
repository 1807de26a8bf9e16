/** The verb and flag tables of docs/chat.md, made from the engine's verb table so the page cannot drift. */
import { FLAGS, type FlagName } from '../engine/verb-flags.js';
import { usageOf, VERB_TABLE, type VerbSpec } from '../engine/verbs.js';

export type VerbsPart = 'verbs' | 'flags';

/** Where a generated table sits in the page: between these two lines. */
export const verbsTableStart = (part: VerbsPart) =>
  `<!-- generated: ${part} (npm run docs:verbs) -->`;
export const VERBS_TABLE_END = '<!-- end of generated table -->';

const cell = (text: string) => text.replaceAll('|', '\\|');

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map((h) => '-'.repeat(h.length)).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** One row per verb, one per flag: usage, what it does, who may run it, the `dr` command. */
export function verbsTables(): Record<VerbsPart, string> {
  const specs = VERB_TABLE as readonly VerbSpec[];
  const verbs = table(
    ['command', 'what it does', 'who may', 'command line'],
    specs.map((s) => [
      `\`${usageOf(s)}\``,
      s.doc ?? s.summary,
      s.access === 'anyone' ? 'anyone' : 'as the policies say',
      s.cli ? `\`dr ${s.verb}\`` : (s.cliOwn ?? ''),
    ]),
  );
  const flags = table(
    ['flag', 'what it gives', 'range (the engine checks it)', 'verbs'],
    (Object.keys(FLAGS) as FlagName[]).map((name) => {
      const f = FLAGS[name];
      return [
        `\`${name}${f.value ? ` ${f.value}${f.words ? '…' : ''}` : ''}\``,
        f.help,
        f.range ?? '',
        specs
          .filter((s) => s.flags?.includes(name))
          .map((s) => s.verb)
          .join(', '),
      ];
    }),
  );
  return { verbs, flags };
}

/** The page with each generated table replaced; throws if a marker is missing. */
export function withVerbsTables(page: string, tables: Record<VerbsPart, string>): string {
  let out = page;
  for (const part of Object.keys(tables) as VerbsPart[]) {
    const start = out.indexOf(verbsTableStart(part));
    const end = start < 0 ? -1 : out.indexOf(VERBS_TABLE_END, start);
    if (start < 0 || end < 0)
      throw new Error(
        `docs/chat.md has no "${verbsTableStart(part)}" … "${VERBS_TABLE_END}" block`,
      );
    out = `${out.slice(0, start)}${verbsTableStart(part)}\n${tables[part]}\n${out.slice(end)}`;
  }
  return out;
}
