#!/usr/bin/env node
// Keeps imports pointing one way: cli → bot → engine → replicator → core.
// (Import cycles are caught by Biome's noImportCycles rule.)
// Usage: node scripts/check-imports.mjs [--root DIR]   (DIR defaults to the repository)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const rootArg = process.argv.indexOf('--root');
const root =
  rootArg > 0 && process.argv[rootArg + 1]
    ? resolve(process.argv[rootArg + 1])
    : resolve(dirname(new URL(import.meta.url).pathname), '..');
const layers = ['core', 'replicator', 'engine', 'bot', 'cli'];
const rank = (file) => layers.indexOf(relative(root, file).split('/')[0]);

function* sources(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return; // a layer that does not exist yet has nothing to check
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.(ts|mts|cts|js|mjs|cjs)$/.test(e.name)) yield p;
  }
}

/**
 * Every way a module can name another: `import … from`, `export … from`, a side-effect
 * `import 'x'`, a dynamic `import('x')`, `require('x')` (also `require.resolve`), and
 * TypeScript's `import x = require('x')`, which the require pattern covers.
 */
const patterns = [
  /(?:^|[\n;])\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire(?:\.resolve)?\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

const problems = [];
for (const layer of layers) {
  for (const file of sources(join(root, layer))) {
    const text = readFileSync(file, 'utf8');
    const specs = new Set(patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1])));
    for (const spec of specs) {
      if (!spec?.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const from = rank(file);
      const to = rank(target);
      if (to < 0)
        problems.push(`${relative(root, file)}: imports ${spec}, outside the source layers`);
      else if (to > from) {
        problems.push(
          `${relative(root, file)}: ${layers[from]}/ must not import ${layers[to]}/ (${spec})`,
        );
      }
    }
  }
}
if (problems.length) {
  console.error(
    `Import direction is cli → bot → engine → replicator → core:\n${problems.join('\n')}`,
  );
  process.exit(1);
}
console.log('imports: ok');
