import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../core/config.js';
import { homePaths } from '../../../core/home.js';
import { cliFolder, drCli as dr, fileMode as mode } from '../../helpers/cli-home.js';

// `dr app` is tested in init-app.test.ts.
let dir: string;
let home: string;

beforeEach(async () => {
  ({ dir, home } = await cliFolder());
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dr init', () => {
  it('creates the home with private keys and says what to do next', async () => {
    const r = await dr('init', '--home', home);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Created Lifeboat home ${home}`);
    expect(r.stdout).toContain('dr app add APP --volume NAME=PATH');
    const p = homePaths(home);
    expect(await mode(p.home)).toBe(0o700);
    expect(await mode(p.kek)).toBe(0o600);
    expect(await mode(p.caKey)).toBe(0o600);
    expect(await mode(p.gatewayKey)).toBe(0o600);
    expect(await mode(p.agentKey)).toBe(0o600);
    expect(await mode(p.tlsDir)).toBe(0o700);
    expect((await stat(p.stateDir)).isDirectory()).toBe(true);
    expect(await readFile(p.caCert, 'utf8')).toContain('BEGIN CERTIFICATE');
    const config = parseConfig(await readFile(p.config, 'utf8'));
    // 7443 unless something on this machine holds it (then the next free one; see below).
    expect(config.gateway.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(config.apps).toEqual({});
    const kek = await readFile(p.kek, 'utf8');
    expect(r.stdout).not.toContain(kek.split('\n')[1]);
  });

  it('picks the next free port when the default 7443 is taken, and says so', async () => {
    // Hold 7443; if another process on this machine holds it already, it is taken all the same.
    const holder = createServer();
    await new Promise<void>((resolve) => {
      holder.once('error', () => resolve());
      holder.listen({ host: '127.0.0.1', port: 7443, exclusive: true }, () => resolve());
    });
    try {
      const r = await dr('init', '--home', home);
      expect(r.code, r.stderr).toBe(0);
      const config = parseConfig(await readFile(homePaths(home).config, 'utf8'));
      expect(config.gateway.address).not.toBe('127.0.0.1:7443');
      expect(config.gateway.listen).toBe(config.gateway.address);
      expect(r.stdout).toContain(
        `gateway at ${config.gateway.address} (127.0.0.1:7443 is taken on this machine)`,
      );
    } finally {
      await new Promise<void>((resolve) =>
        holder.listening ? holder.close(() => resolve()) : resolve(),
      );
    }
  });

  it('keeps an explicit --gateway even when that port is taken', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) =>
      holder.listen({ host: '127.0.0.1', port: 0 }, () => resolve()),
    );
    const port = (holder.address() as { port: number }).port;
    try {
      const r = await dr('init', '--home', home, '--gateway', `127.0.0.1:${port}`);
      expect(r.code, r.stderr).toBe(0);
      const config = parseConfig(await readFile(homePaths(home).config, 'utf8'));
      expect(config.gateway.address).toBe(`127.0.0.1:${port}`);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it('takes the home from the global --home and DR_HOME too', async () => {
    expect((await dr('--home', home, 'init')).code).toBe(0);
    expect((await stat(homePaths(home).config)).isFile()).toBe(true);
    const viaEnv = join(dir, 'env-home');
    vi.stubEnv('DR_HOME', viaEnv);
    try {
      expect((await dr('init')).code).toBe(0);
    } finally {
      vi.unstubAllEnvs();
    }
    expect((await stat(homePaths(viaEnv).config)).isFile()).toBe(true);
  });

  it('refuses to overwrite a home without --force, and --force replaces the key', async () => {
    expect((await dr('init', '--home', home)).code).toBe(0);
    const p = homePaths(home);
    const firstKey = await readFile(p.kek, 'utf8');
    const firstCa = await readFile(p.caCert, 'utf8');

    const again = await dr('init', '--home', home);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${home} is already a Lifeboat home`);
    expect(again.stderr).toContain('--force');
    expect(again.stderr).toContain('unreadable');
    expect(await readFile(p.kek, 'utf8')).toBe(firstKey);

    const forced = await dr('init', '--home', home, '--force', '--json');
    expect(forced.code).toBe(0);
    const body = JSON.parse(forced.stdout) as { replaced: boolean; kek: { path: string } };
    expect(body.replaced).toBe(true);
    expect(body.kek.path).toBe(p.kek);
    expect(await readFile(p.kek, 'utf8')).not.toBe(firstKey);
    expect(await readFile(p.caCert, 'utf8')).not.toBe(firstCa);
    expect(await mode(p.kek)).toBe(0o600);
  });

  it('refuses a home that holds a key but no dr.yaml', async () => {
    const p = homePaths(home);
    await mkdir(join(home, 'keys'), { recursive: true });
    await writeFile(p.kek, 'precious');
    const r = await dr('init', '--home', home);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(p.kek);
    expect(await readFile(p.kek, 'utf8')).toBe('precious');
  });

  it('writes --gateway into dr.yaml and the gateway certificate', async () => {
    const r = await dr('init', '--home', home, '--gateway', 'dr.example.com:8443', '--json');
    expect(r.code).toBe(0);
    const config = parseConfig(await readFile(homePaths(home).config, 'utf8'));
    expect(config.gateway.listen).toBe('dr.example.com:8443');
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(await readFile(homePaths(home).gatewayCert));
    expect(cert.checkHost('dr.example.com')).toBe('dr.example.com');
  });

  it.each(['localhost', '10.0.0.5:99999', 'bad host:7443', '[zz::1]:7443', ':7443'])(
    'rejects --gateway %s and creates nothing',
    async (gateway) => {
      const r = await dr('init', '--home', home, '--gateway', gateway);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--gateway ${JSON.stringify(gateway)} is not HOST:PORT`);
      await expect(stat(home)).rejects.toThrow(/ENOENT/);
    },
  );

  it('reports a refused init as JSON with --json', async () => {
    await dr('init', '--home', home);
    const r = await dr('init', '--home', home, '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'home_exists', subject: home } });
  });
});
