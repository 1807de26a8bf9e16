import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LoadedConfig, readConfig } from '../../core/config.js';
import type { Command, Reply } from '../../engine/contract.js';
import { createEngine, type Engine } from '../../engine/create-engine.js';
import { copyShippedPolicies } from '../../engine/shipped-policies.js';

/** People and apps most engine tests use: alice (owner of web), two on-call SREs, a stranger to groups. */
export const PEOPLE_YAML = `
people:
  alice: { ids: ['slack:UALICE', 'console:alice'], groups: [devs] }
  sam: { ids: ['slack:USAM'], groups: [sre-oncall] }
  tom: { ids: ['slack:UTOM', 'dingtalk:1001'], groups: [sre-oncall] }
  uma: { ids: ['slack:UUMA'], groups: [sre-oncall] }
  dan: { ids: ['slack:UDAN'], groups: [devs] }
  root: { ids: ['console:root'], groups: [sre-oncall] }
admin: root
channels:
  admin: ['slack:CADMIN']
  alerts: ['slack:CALERTS']
  escalation: ['slack:CESC']
  apps:
    web: ['slack:CWEB']
apps:
  web:
    tier: prod
    owners: [alice]
    rpoObjective: 60s
    volumes: [{ name: data, path: /tmp/none-web.img }]
  shop:
    tier: dev
    volumes: [{ name: data, path: /tmp/none-shop.img }]
`;

export interface EngineHome {
  dir: string;
  home: string;
  policies: string;
  config: () => Promise<LoadedConfig>;
  cleanup: () => Promise<void>;
}

/** A home with dr.yaml (`yaml`, PEOPLE_YAML by default) and the shipped policies copied in. */
export async function engineHome(yaml = PEOPLE_YAML): Promise<EngineHome> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-engine-'));
  const home = join(dir, 'home');
  const policies = join(home, 'policies');
  await copyShippedPolicies(policies);
  await writeFile(join(home, 'dr.yaml'), `version: 1\n${yaml}`);
  return {
    dir,
    home,
    policies,
    config: () => readConfig(home, {}),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A fresh Redis key prefix per test. */
export const testPrefix = () => `t${randomBytes(4).toString('hex')}:`;

let seq = 0;
/** A command as a surface would send it. */
export function command(actor: string, words: string, extra: Partial<Command> = {}): Command {
  const [verb = '', ...rest] = words.split(' ');
  const c: Command = {
    id: `c-${process.pid}-${++seq}-${randomBytes(3).toString('hex')}`,
    actor,
    surface: actor.startsWith('slack:')
      ? 'slack'
      : actor.startsWith('dingtalk:')
        ? 'dingtalk'
        : actor === 'scheduler'
          ? 'scheduler'
          : 'console',
    channel: 'slack:CASK',
    verb: verb as Command['verb'],
    args: {},
    at: new Date().toISOString(),
    ...extra,
  };
  const [first] = rest;
  if (['approve', 'reject', 'cancel', 'cleanup', 'ack'].includes(verb))
    c.args = { ...c.args, id: first ?? '' };
  else if (first !== undefined) c.app = first;
  for (const w of rest) {
    if (w === '--emergency') c.args = { ...c.args, emergency: true };
    if (w === '--dry-run') c.args = { ...c.args, dryRun: true };
  }
  return { ...c, args: { ...c.args, ...(extra.args ?? {}) } };
}

export async function startEngine(
  h: EngineHome,
  redisUrl: string,
  prefix: string,
  opts: { now?: () => number; watch?: boolean } = {},
): Promise<Engine> {
  return createEngine({
    home: h.home,
    config: await h.config(),
    redisUrl,
    prefix,
    watchPolicies: opts.watch ?? false,
    ...(opts.now ? { now: opts.now } : {}),
  });
}

export type { Reply };
