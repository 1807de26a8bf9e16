#!/usr/bin/env node
// Keeps imports pointing one way: cli → bot → engine → replicator → core.
// (Import cycles are caught by Biome's noImportCycles rule.)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
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
    else if (/\.(ts|mts|js|mjs)$/.test(e.name)) yield p;
  }
}

const importRe =
  /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const problems = [];
for (const layer of layers) {
  for (const file of sources(join(root, layer))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2];
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
