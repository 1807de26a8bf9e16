// dr.yaml: reading it (with DR_GATEWAY applied), validating it, editing it in place, and the first one.
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { type Document, LineCounter, parseDocument } from 'yaml';
import { writeFileAtomic } from './atomic-file.js';
import { type AppConfig, type Config, configSchema } from './config-schema.js';

export { APP_NAME, VOLUME_NAME } from './names.js';

import { type BucketLocation, parseBucketUrl } from './bucket-url.js';
import { readEnv } from './env.js';
import { DrError, systemCode } from './errors.js';
import { homePaths } from './home.js';

export type {
  AlicloudProviderConfig,
  AppConfig,
  Config,
  LocalProviderConfig,
  ProviderConfig,
  VolumeConfig,
} from './config-schema.js';

/** A config as read from DR_HOME, with paths resolved and environment overrides applied. */
export interface LoadedConfig extends Config {
  home: string;
  /**
   * Absolute path of the gateway's store; with an object store, its local write-ahead log and
   * cache (`store` in the home).
   */
  storeDir: string;
  /** Set when gateway.store is `s3://BUCKET[/PREFIX]`. */
  objectStore?: BucketLocation & { endpoint?: string; region?: string };
}

/** Reads and validates DR_HOME/dr.yaml; `DR_GATEWAY` overrides gateway.address. */
export async function readConfig(
  home: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedConfig> {
  const paths = homePaths(home);
  let text: string;
  try {
    text = await readFile(paths.config, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') {
      throw new DrError(`no Lifeboat home at ${paths.home} (${paths.config} is missing)`, {
        code: 'home_missing',
        subject: paths.config,
        remedy: 'run `dr init` (or set DR_HOME / --home to an existing home)',
      });
    }
    throw new DrError(`cannot read ${paths.config}: ${(err as Error).message}`, {
      code: 'config_invalid',
      subject: paths.config,
      remedy: 'check the file permissions',
      cause: err,
    });
  }
  const config = parseConfig(text, paths.config);
  const gateway = readEnv('DR_GATEWAY', env);
  if (gateway) {
    config.gateway.address = gateway;
    config.gateway.addresses = [gateway];
  }
  const bucket = parseBucketUrl(config.gateway.store);
  if (bucket) {
    const endpoint = readEnv('AWS_ENDPOINT_URL_S3', env) ?? config.gateway.s3?.endpoint;
    const region = readEnv('AWS_REGION', env);
    return {
      ...config,
      home: paths.home,
      storeDir: resolve(paths.home, 'store'),
      objectStore: {
        ...bucket,
        ...(endpoint ? { endpoint } : {}),
        ...(region ? { region } : {}),
      },
    };
  }
  const storeDir = isAbsolute(config.gateway.store)
    ? config.gateway.store
    : resolve(paths.home, config.gateway.store);
  return { ...config, home: paths.home, storeDir };
}

/** Validates YAML text; errors name the file, line, key and what was expected. */
export function parseConfig(text: string, file = 'dr.yaml'): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const at = e?.linePos?.[0] ?? (e ? lines.linePos(e.pos[0]) : undefined);
    const why = e?.message.split('\n')[0] ?? 'parse error';
    throw new DrError(`${file}${at ? `:${at.line}` : ''}: not valid YAML (${why})`, {
      code: 'config_invalid',
      subject: file,
      remedy: 'fix the YAML syntax on that line',
    });
  }
  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (result.success) {
    const unknownPerson = (name: string) => result.data.people[name] === undefined;
    const bad: [string[], string][] = [];
    if (result.data.admin !== undefined && unknownPerson(result.data.admin))
      bad.push([['admin'], result.data.admin]);
    for (const [app, a] of Object.entries(result.data.apps))
      a.owners.forEach((o, i) => {
        if (unknownPerson(o)) bad.push([['apps', app, 'owners', String(i)], o]);
      });
    const first = bad[0];
    if (!first) return result.data;
    const [path, name] = first;
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const line = node?.range ? lines.linePos(node.range[0]).line : undefined;
    throw new DrError(
      `${file}${line ? `:${line}` : ''}: ${path.join('.')}: no person named ${JSON.stringify(name)} under people`,
      {
        code: 'config_invalid',
        subject: path.join('.'),
        remedy: `add ${name} under people: in ${file}, or use one of: ${Object.keys(result.data.people).join(', ') || '(nobody yet)'}`,
      },
    );
  }
  const issue = result.error.issues[0];
  const path = (issue?.path ?? []).map((p) => (typeof p === 'symbol' ? String(p) : p));
  const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const line = node?.range ? lines.linePos(node.range[0]).line : undefined;
  const key = path.length > 0 ? path.join('.') : '(top level)';
  // zod reports a bad record key as "Invalid key in record", with the key's own message nested
  const nested = issue?.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
  const message = nested ?? issue?.message ?? 'invalid';
  throw new DrError(`${file}${line ? `:${line}` : ''}: ${key}: ${message}`, {
    code: 'config_invalid',
    subject: key,
    remedy: `correct ${key} in ${file}`,
  });
}

/**
 * Changes dr.yaml through its YAML document, so comments and layout survive,
 * and validates the result before it replaces the file.
 */
export async function updateConfig(home: string, change: (doc: Document) => void): Promise<Config> {
  const paths = homePaths(home);
  const text = await readFile(paths.config, 'utf8');
  const doc = parseDocument(text);
  change(doc);
  const next = doc.toString();
  const config = parseConfig(next, paths.config);
  await writeFileAtomic(paths.config, next);
  return config;
}

export function findApp(config: Config, app: string): AppConfig {
  const found = config.apps[app];
  if (!found) {
    const known = Object.keys(config.apps);
    throw new DrError(`no app named ${JSON.stringify(app)}`, {
      code: 'app_unknown',
      subject: app,
      remedy: known.length
        ? `use one of: ${known.join(', ')} (see \`dr app list\`)`
        : 'add one with `dr app add APP --volume NAME=PATH`',
    });
  }
  return found;
}

export function defaultConfigText(gateway: string, admin = 'admin'): string {
  return `# Lifeboat configuration. See docs/configuration.md for every key.
version: 1
gateway:
  # where \`dr gateway\` listens, and where agents and the CLI reach it
  listen: ${gateway}
  address: ${gateway}
  # encrypted block store, relative to this directory
  store: store
  # the gateway refuses new batches when its disk has less free space than this
  minFreeSpace: 64MiB
  # write the store with direct I/O (not through the page cache) where the file system allows
  directIo: true
  # Prometheus /metrics over plain HTTP (docs/metrics.md); off unless set
  # metrics: 127.0.0.1:9464
retention:
  all: 1h      # keep every recovery point for an hour
  hourly: 24h  # then one an hour for a day
  daily: 30d   # then one a day for 30 days
agent:
  interval: 1s    # period of \`dr agent\`'s cycles (a cycle starts every interval)
  tracker: auto   # auto | trace | scan
  fullCopy: false # true reads holes and free space too (see docs/replication.md)
  batchSize: 4MiB
  compression: zstd   # zstd (level adapted to the link) | zstd:N (1-19, pinned) | lz4
  # bandwidth cap, optionally by time of day in the app's timeZone; none unless set
  # maxRate: 10MiB/s mon-fri 08:00-18:00, 50MiB/s
# who may do what is decided by the policy files in this directory (see docs/policies.md)
policies: policies
# people, their chat identities (slack:U…, dingtalk:<staffId>, console:<name>) and groups
people:
  ${admin}:
    ids: [console:${admin}]
    groups: [sre-oncall]
# the person \`dr drill|failover|failback\` on this machine acts as
admin: ${admin}
# where notices go: admin (policy errors), alerts (RPO, agents), escalation, and per app
# (add apps: with a list of channels per app, like \`web: [slack:C0123]\`)
channels:
  admin: [console]
  alerts: [console]
  escalation: []
apps: {}
`;
}
