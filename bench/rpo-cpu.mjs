// bench:rpo's CPU split: where the agent's busy time went, read from a V8 .cpuprofile.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where an agent's CPU went, from the first frame (leaf upwards) that a rule names. */
const CPU_RULES = [
  ['gc', (fr) => fr.functionName === '(garbage collector)'],
  ['logging', (fr) => /\/node_modules\/(pino|sonic-boom|thread-stream)\//.test(fr.url)],
  ['hashing', (fr) => fr.url.endsWith('/crypto/volume-key.js')],
  ['sealing', (fr) => fr.url.endsWith('/crypto/block-cipher.js')],
  ['tracing', (fr) => /\/capture\/(trace-tracker|tracefs|dirty-bitmap)\.js$/.test(fr.url)],
  ['reading', (fr) => /\/capture\/(read-blocks|volume-file|scan-tracker)\.js$/.test(fr.url)],
  [
    'shipping',
    (fr) =>
      /\/(agent\/batch-shipper|transport\/(batch-codec|gateway-client))\.js$/.test(fr.url) ||
      /^node:(_tls|_http|https|net|internal\/(tls|http|stream_base))/.test(fr.url),
  ],
];

/** Shares of the agent's busy samples by kind of work, from the .cpuprofile in `dir`. */
export function cpuSplit(dir) {
  const file = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
  if (!file) return undefined;
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const kindOf = new Map();
  const kind = (id) => {
    if (kindOf.has(id)) return kindOf.get(id);
    const fr = byId.get(id).callFrame;
    let k;
    if (fr.functionName === '(idle)') k = 'idle';
    else k = CPU_RULES.find(([, test]) => test(fr))?.[0];
    k ??= parent.has(id) ? kind(parent.get(id)) : 'other';
    kindOf.set(id, k);
    return k;
  };
  const us = {};
  const otherLeaves = new Map();
  let busy = 0;
  prof.samples.forEach((id, i) => {
    const k = kind(id);
    if (k === 'idle') return;
    const dt = prof.timeDeltas[i] ?? 0;
    us[k] = (us[k] ?? 0) + dt;
    busy += dt;
    if (k === 'other') {
      const fr = byId.get(id).callFrame;
      const at = `${fr.functionName || '(anonymous)'} ${fr.url.split('/').slice(-2).join('/')}`;
      otherLeaves.set(at, (otherLeaves.get(at) ?? 0) + dt);
    }
  });
  const kinds = [...CPU_RULES.map(([k]) => k), 'other'];
  // (program) is V8 and native work no JavaScript frame owns: part of "other".
  const shares = Object.fromEntries(kinds.map((k) => [k, busy > 0 ? (us[k] ?? 0) / busy : 0]));
  /** The functions (leaf frames) that most of "other" was spent in, as shares of all busy time. */
  const otherTop = [...otherLeaves]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([at, t]) => ({ at, share: t / busy }));
  return { ...shares, otherTop };
}
