#!/usr/bin/env node
// Rewrites the environment table of docs/configuration.md from core/env.ts (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';

const { withEnvTable } = await import('../dist/core/env-doc.js');
const page = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(page, withEnvTable(readFileSync(page, 'utf8')));
process.stdout.write('docs/configuration.md: environment table regenerated\n');
