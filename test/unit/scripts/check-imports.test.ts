// The import-direction check fails on every way a lower layer can name a higher one.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../../scripts/check-imports.mjs', import.meta.url));
const trees: string[] = [];

/** Runs the check on a tree made of `files` (path → text). */
function check(files: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), 'check-imports-'));
  trees.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const r = spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

afterEach(() => {
  for (const t of trees.splice(0)) rmSync(t, { recursive: true, force: true });
});

describe('scripts/check-imports.mjs', () => {
  const base = { 'cli/main.ts': 'export const x = 1;\n', 'engine/e.ts': 'export const e = 1;\n' };

  it('passes a tree whose imports point down', () => {
    const r = check({
      ...base,
      'bot/b.ts': "import { e } from '../engine/e.js';\nimport '../core/c.js';\n",
      'core/c.ts': 'export {};\n',
    });
    expect(r.status).toBe(0);
    expect(r.out).toContain('imports: ok');
  });

  it.each([
    ['a named import', "import { x } from '../cli/main.js';\n"],
    ['a multi-line import', "import {\n  x,\n} from '../cli/main.js';\n"],
    ['a type import', "import type { X } from '../cli/main.js';\n"],
    ['a re-export', "export * from '../cli/main.js';\n"],
    ['a side-effect import', "import '../cli/main.js';\n"],
    ['a side-effect import after a statement', "const a = 1; import '../cli/main.js';\n"],
    ['a dynamic import', "const m = await import('../cli/main.js');\n"],
    ['a require', "const m = require('../cli/main.js');\n"],
    ['require.resolve', "const p = require.resolve('../cli/main.js');\n"],
    ['an import-equals require', "import m = require('../cli/main.js');\n"],
  ])('fails on %s of a higher layer', (_label, text) => {
    const r = check({ ...base, 'engine/bad.ts': text });
    expect(r.status).toBe(1);
    expect(r.out).toContain('engine/bad.ts: engine/ must not import cli/ (../cli/main.js)');
  });

  it('fails on an import from outside the source layers', () => {
    const r = check({ ...base, 'core/c.ts': "import '../test/helpers/x.js';\n" });
    expect(r.status).toBe(1);
    expect(r.out).toContain('core/c.ts: imports ../test/helpers/x.js, outside the source layers');
  });
});
