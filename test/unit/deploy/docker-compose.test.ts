import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../../cli/main.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * The schema as Ajv2019 takes it. The 2021 file names its draft by a URL Ajv does not know, and
 * labels subschemas with draft-04 `id` strings that no `$ref` uses (refs are JSON pointers):
 * both are dropped; every constraint stays.
 */
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string'))
      .map(([k, v]) => [k, withoutIds(v)]),
  );
}
const schema = withoutIds(
  JSON.parse(await readFile(`${root}test/fixtures/compose-spec/compose-spec.json`, 'utf8')),
) as object;

/** Compose's variable interpolation: ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error}. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op, arg) => {
    const v = env[name];
    const unset = op?.startsWith(':') ? !v : v === undefined;
    if (!unset) return v as string;
    if (op?.endsWith('?')) throw new Error(`required variable ${name} is missing: ${arg}`);
    return op ? arg : '';
  });
}

function validator() {
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The schema's own formats, as Compose reads them.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^((\[?[0-9a-fA-F.:]+\]?:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp))?|\d+)$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
  return ajv.compile(schema);
}

type Service = {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[]; interval: string };
  depends_on?: Record<string, { condition: string }>;
};
type ComposeFile = { services: Record<string, Service>; volumes: Record<string, unknown> };

const env = { DR_GATEWAY_NAME: 'dr.example.com', DR_STATUS_TOKEN: randomBytes(24).toString('hex') };
const text = await readFile(`${root}docker-compose.yml`, 'utf8');
const load = (t: string): ComposeFile => parse(interpolate(t, env), { merge: true });

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification schema', () => {
    const validate = validator();
    const ok = validate(load(text));
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('fails the schema when a key is misspelt or a duration is not one (the check is live)', () => {
    const validate = validator();
    expect(validate(load(text.replace('healthcheck:', 'healtcheck:')))).toBe(false);
    expect(validate(load(text.replace('interval: 5s', 'interval: five seconds')))).toBe(false);
  });

  it('runs Redis with AOF and noeviction, and the gateway, a worker and dr serve on it', () => {
    const c = load(text);
    expect(Object.keys(c.services).sort()).toEqual(['gateway', 'redis', 'serve', 'worker']);
    const redis = c.services.redis?.command?.join(' ');
    expect(redis).toContain('--appendonly yes');
    expect(redis).toContain('--maxmemory-policy noeviction');
    expect(c.services.redis?.volumes).toContain('redis-data:/data');
    for (const name of ['gateway', 'worker', 'serve']) {
      const s = c.services[name] as Service;
      expect(s.environment?.DR_HOME, name).toBe('/var/lib/lifeboat');
      expect(s.environment?.REDIS_URL, name).toBe('redis://redis:6379');
      expect(s.volumes, name).toContain('lifeboat-home:/var/lib/lifeboat');
      expect(s.depends_on?.redis?.condition, name).toBe('service_healthy');
    }
    expect(c.services.gateway?.volumes).toContain('lifeboat-store:/var/lib/lifeboat/store');
    expect(c.services.worker?.volumes).toContain('lifeboat-store:/var/lib/lifeboat/store');
  });

  it('gives every service a health check whose script the image carries', async () => {
    const c = load(text);
    const dockerfile = await readFile(`${root}Dockerfile`, 'utf8');
    for (const [name, s] of Object.entries(c.services)) {
      expect(s.healthcheck?.test, name).toBeDefined();
      const script = s.healthcheck?.test.find((a) => a.endsWith('healthcheck.mjs'));
      if (script) {
        expect(script).toBe('/opt/lifeboat/scripts/healthcheck.mjs');
        expect(dockerfile).toContain('COPY scripts/healthcheck.mjs ./scripts/healthcheck.mjs');
        expect(dockerfile).toContain('WORKDIR /opt/lifeboat');
      }
    }
  });

  it('builds on Node 24, the LTS that `npm run test:node24` tests, and probes the gateway with mutual TLS', async () => {
    const dockerfile = await readFile(`${root}Dockerfile`, 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
    const gateway = load(text).services.gateway;
    // A bare TCP probe of the mutual-TLS port made the gateway log a refused handshake each time.
    expect(gateway?.healthcheck?.test.slice(-2)).toEqual(['gateway', '127.0.0.1:7443']);
  });

  it('runs only dr commands that exist, with options they take', async () => {
    const c = load(text);
    const program = await buildProgram({ code: 0 });
    for (const name of ['gateway', 'worker', 'serve']) {
      const [sub, ...args] = c.services[name]?.command ?? [];
      const cmd = program.commands.find((x) => x.name() === sub);
      expect(cmd, `dr ${sub}`).toBeDefined();
      const known = new Set(cmd?.options.map((o) => o.long));
      for (const a of args.filter((x) => x.startsWith('--')))
        expect(known, `dr ${sub} ${a}`).toContain(a);
    }
  });

  it('refuses to start without the token and the gateway name it needs', () => {
    expect(() => interpolate(text, { DR_GATEWAY_NAME: 'dr.example.com' })).toThrow(
      /DR_STATUS_TOKEN/,
    );
    expect(() => interpolate(text, { DR_STATUS_TOKEN: env.DR_STATUS_TOKEN })).toThrow(
      /DR_GATEWAY_NAME/,
    );
  });

  it('builds from sources that exist in the repository', async () => {
    const dockerfile = await readFile(`${root}Dockerfile`, 'utf8');
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] as string).split(/\s+/),
    );
    expect(copies.length).toBeGreaterThan(3);
    for (const src of copies) expect(existsSync(`${root}${src}`), src).toBe(true);
  });
});
