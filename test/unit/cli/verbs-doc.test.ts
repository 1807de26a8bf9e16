// docs/chat.md's verb and flag tables are the engine's verb table's own.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { verbsTables, withVerbsTables } from '../../../cli/verbs-doc.js';
import { VERBS } from '../../../engine/contract.js';

const page = fileURLToPath(new URL('../../../docs/chat.md', import.meta.url));

describe('docs/chat.md', () => {
  it('holds exactly the tables the verb table makes (else: npm run docs:verbs)', async () => {
    const text = await readFile(page, 'utf8');
    const tables = verbsTables();
    for (const verb of VERBS) expect(tables.verbs).toMatch(new RegExp(`^\\| \`${verb}\\b`, 'm'));
    expect(tables.flags).toMatch(/^\| `--keep D` \| .* \| 1s to 7d \| drill \|$/m);
    expect(tables.verbs).toContain('`policy list \\| policy explain <command…>`');
    expect(withVerbsTables(text, tables), 'docs/chat.md is stale: run `npm run docs:verbs`').toBe(
      text,
    );
  });

  it('refuses a page without the markers, naming them', () => {
    expect(() => withVerbsTables('# nothing here\n', verbsTables())).toThrow(
      /docs\/chat\.md has no "<!-- generated: verbs/,
    );
  });
});
