// The environment table of docs/configuration.md, written from the schema in core/env.ts.
import { ENV, type EnvVar } from './env.js';

export const ENV_TABLE_START =
  '<!-- env-table: generated from core/env.ts by `npm run docs:env` -->';
export const ENV_TABLE_END = '<!-- /env-table -->';

/** One row per variable: its name, what it does, and what happens when it is unset. */
export function envTable(): string {
  const rows = Object.entries(ENV).map(([name, spec]: [string, EnvVar<unknown>]) =>
    `| \`${name}\` | ${spec.about} | ${spec.unset} |`.replaceAll('\n', ' '),
  );
  return ['| variable | meaning | when unset |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `page` with the text between the table's markers replaced by the table as the schema has it. */
export function withEnvTable(page: string): string {
  const start = page.indexOf(ENV_TABLE_START);
  const end = page.indexOf(ENV_TABLE_END);
  if (start < 0 || end < start) throw new Error('docs/configuration.md has no env-table markers');
  return `${page.slice(0, start + ENV_TABLE_START.length)}\n${envTable()}\n${page.slice(end)}`;
}
