#!/usr/bin/env node
// Rewrites the verb and flag tables of docs/chat.md from the engine's verb table (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';

const { verbsTables, withVerbsTables } = await import('../dist/cli/verbs-doc.js');
const page = new URL('../docs/chat.md', import.meta.url);
writeFileSync(page, withVerbsTables(readFileSync(page, 'utf8'), verbsTables()));
process.stdout.write('docs/chat.md: verb and flag tables regenerated\n');
