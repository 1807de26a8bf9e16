import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfigText, findApp, parseConfig, readConfig } from '../../../core/config.js';
import { DrError } from '../../../core/errors.js';

/** The DrError a call throws (fails the test if it throws nothing or something else). */
function thrown(fn: () => unknown): DrError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DrError);
    return err as DrError;
  }
  throw new Error('expected a DrError, nothing was thrown');
}

async function rejected(p: Promise<unknown>): Promise<DrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DrError);
  return err as DrError;
}

const withApp = (app: string) =>
  `${defaultConfigText('127.0.0.1:7443').replace('apps: {}\n', '')}apps:\n${app}`;

describe('parseConfig', () => {
  it('reads the default config with its defaults', () => {
    const config = parseConfig(defaultConfigText('10.0.0.5:7443'));
    expect(config.gateway).toEqual({
      listen: '10.0.0.5:7443',
      address: '10.0.0.5:7443',
      addresses: ['10.0.0.5:7443'],
      store: 'store',
      minFreeSpace: 64 * 1024 * 1024,
      directIo: true,
      shared: false,
    });
    expect(config.retention.daily).toBe(30 * 86_400_000);
    expect(config.agent).toEqual({
      interval: 1000,
      batchSize: 4 * 1024 * 1024,
      tracker: 'auto',
      compression: { codec: 'zstd', level: 'auto' },
      fullCopy: false,
    });
  });

  it('takes gateway.address as one HOST:PORT or a list of them, and names a bad one in the list', () => {
    const text = (address: string) =>
      defaultConfigText('127.0.0.1:7443').replace(/^ {2}address: .*$/m, `  address: ${address}`);
    const two = parseConfig(text('[10.0.0.5:7443, 10.0.0.6:7443]'));
    expect(two.gateway.address).toBe('10.0.0.5:7443');
    expect(two.gateway.addresses).toEqual(['10.0.0.5:7443', '10.0.0.6:7443']);
    expect(() => parseConfig(text('[10.0.0.5:7443, gateway-two]'), 'dr.yaml')).toThrow(
      /dr\.yaml:\d+: gateway\.address\.1: expected HOST:PORT/,
    );
    expect(() => parseConfig(text('[]'), 'dr.yaml')).toThrow(/list at least one gateway/);
  });

  it('reads agent.compression and agent.maxRate, and names a bad one with its line', () => {
    const text = (compression: string, maxRate: string) =>
      defaultConfigText('127.0.0.1:7443').replace(
        '  compression: zstd ',
        `  compression: ${compression}\n  maxRate: ${maxRate} `,
      );
    const ok = parseConfig(text('zstd:6', '"10MiB/s mon-fri 08:00-18:00, 50MiB/s"'));
    expect(ok.agent.compression).toEqual({ codec: 'zstd', level: 6 });
    expect(ok.agent.maxRate?.windows).toHaveLength(2);
    expect(parseConfig(text('lz4', '20MiB/s')).agent.compression).toEqual({ codec: 'lz4' });
    const bad = text('gzip', '20MiB/s');
    const line = bad.split('\n').findIndex((l) => l.includes('compression: gzip')) + 1;
    expect(thrown(() => parseConfig(bad)).message).toContain(
      `dr.yaml:${line}: agent.compression: "gzip" is not a compression: write lz4, zstd`,
    );
    expect(thrown(() => parseConfig(text('zstd:20', '20MiB/s'))).message).toContain(
      '"zstd:20" is not a compression',
    );
    expect(thrown(() => parseConfig(text('zstd', 'fast'))).message).toContain(
      'agent.maxRate: fast is not a rate: write a rate like 20MiB/s',
    );
    expect(thrown(() => parseConfig(text('zstd', '"5MiB/s 9-17"'))).message).toContain(
      'agent.maxRate: 9-17 is not a day or days like mon-fri',
    );
  });

  it('reads an app time zone and names an unknown one', () => {
    const app = (tz: string) =>
      withApp(`  web:\n    timeZone: ${tz}\n    volumes: [{ name: d, path: /x }]\n`);
    expect(parseConfig(app('Asia/Shanghai')).apps.web?.timeZone).toBe('Asia/Shanghai');
    expect(thrown(() => parseConfig(app('Mars/Olympus'))).message).toContain(
      'apps.web.timeZone: expected an IANA time zone',
    );
  });

  it('parses an app and fills in tier and block size', () => {
    const config = parseConfig(
      withApp('  web:\n    volumes:\n      - name: data\n        path: /dev/vdb\n'),
    );
    expect(findApp(config, 'web')).toEqual({
      tier: 'dev',
      blockSize: 65536,
      owners: [],
      rpoObjective: 60_000,
      fenceTimeout: 60_000,
      volumes: [{ name: 'data', path: '/dev/vdb' }],
    });
  });

  it('reads a fence command and its timeout, and names a bad one', () => {
    const app = (extra: string) =>
      withApp(`  web:\n    volumes: [{ name: d, path: /a }]\n${extra}`);
    const fenced = findApp(
      parseConfig(app('    fence: systemctl stop web && umount /srv\n    fenceTimeout: 2m\n')),
      'web',
    );
    expect(fenced.fence).toBe('systemctl stop web && umount /srv');
    expect(fenced.fenceTimeout).toBe(120_000);
    expect(() => parseConfig(app("    fence: ' '\n"))).toThrow(
      /apps\.web\.fence: expected a command, or leave fence out/,
    );
    expect(() => parseConfig(app('    fenceTimeout: 2h\n'))).toThrow(
      /apps\.web\.fenceTimeout: expected a duration from 100ms to 1h/,
    );
  });

  it('names the file, line and key of a bad block size', () => {
    const text = withApp(
      '  web:\n    tier: prod\n    blockSize: 48KiB\n    volumes:\n      - name: data\n        path: /dev/vdb\n',
    );
    const line = text.split('\n').findIndex((l) => l.includes('blockSize: 48KiB')) + 1;
    const err = thrown(() => parseConfig(text, '/srv/dr/dr.yaml'));
    expect(err.code).toBe('config_invalid');
    expect(err.subject).toBe('apps.web.blockSize');
    expect(err.message).toContain(
      `/srv/dr/dr.yaml:${line}: apps.web.blockSize: expected a power of two`,
    );
    expect(err.message).toContain('To resolve, correct apps.web.blockSize in /srv/dr/dr.yaml');
  });

  it('names the line of an unknown tier and of a size that is not a size', () => {
    const tier = withApp('  web:\n    tier: gold\n    volumes: [{ name: d, path: /x }]\n');
    const tierLine = tier.split('\n').findIndex((l) => l.includes('tier: gold')) + 1;
    expect(thrown(() => parseConfig(tier)).message).toMatch(
      new RegExp(`^dr\\.yaml:${tierLine}: apps\\.web\\.tier: `),
    );
    const size = defaultConfigText('127.0.0.1:7443').replace(
      'minFreeSpace: 64MiB',
      'minFreeSpace: lots',
    );
    const sizeLine = size.split('\n').findIndex((l) => l.includes('minFreeSpace: lots')) + 1;
    expect(thrown(() => parseConfig(size)).message).toContain(
      `dr.yaml:${sizeLine}: gateway.minFreeSpace: expected a disk size like 64KiB or 4MiB`,
    );
  });

  it('names the line of a YAML syntax error', () => {
    const err = thrown(() => parseConfig('version: 1\ngateway:\n  listen: [oops\n', 'dr.yaml'));
    expect(err.code).toBe('config_invalid');
    expect(err.message).toMatch(
      /^dr\.yaml:\d+: not valid YAML \(Flow sequence in block collection/,
    );
  });

  it('rejects an app without volumes, duplicate volume names and a bad app name', () => {
    expect(thrown(() => parseConfig(withApp('  web:\n    volumes: []\n'))).message).toContain(
      'apps.web.volumes: an app needs at least one volume',
    );
    const twice = withApp(
      '  web:\n    volumes:\n      - { name: d, path: /a }\n      - { name: d, path: /b }\n',
    );
    expect(thrown(() => parseConfig(twice)).message).toContain('volume names must differ');
    expect(
      thrown(() => parseConfig(withApp('  Web:\n    volumes: [{ name: d, path: /a }]\n'))).message,
    ).toContain('app names are lower-case letters, digits and -');
  });

  it('rejects a gateway that is not HOST:PORT', () => {
    const text = defaultConfigText('127.0.0.1:7443').replace(
      'address: 127.0.0.1:7443',
      'address: 127.0.0.1',
    );
    const err = thrown(() => parseConfig(text));
    expect(err.subject).toBe('gateway.address');
    expect(err.message).toContain('expected HOST:PORT');
  });

  it('reads gateway.recordStreams as HOST:PORT or false, and names anything else', () => {
    const base = defaultConfigText('127.0.0.1:7443');
    const withStreams = (v: string) =>
      base.replace('address: 127.0.0.1:7443', `address: 127.0.0.1:7443\n  recordStreams: ${v}`);
    expect(parseConfig(base).gateway.recordStreams).toBeUndefined();
    expect(parseConfig(withStreams('127.0.0.1:7444')).gateway.recordStreams).toBe('127.0.0.1:7444');
    expect(parseConfig(withStreams('false')).gateway.recordStreams).toBe(false);
    for (const bad of ['true', 'yes', '7444', 'host']) {
      const err = thrown(() => parseConfig(withStreams(bad)));
      expect(err.subject, bad).toBe('gateway.recordStreams');
    }
  });
});

describe('parseConfig: the app provider', () => {
  const ecs = [
    'kind: alicloud',
    'regionId: cn-hangzhou',
    'zoneId: cn-hangzhou-h',
    'vSwitchId: vsw-prod',
    'securityGroupId: sg-prod',
    'drillVSwitchId: vsw-drill',
    'drillSecurityGroupId: sg-drill',
    'instanceType: ecs.g7.large',
    'workerInstanceId: i-worker',
  ];
  const withProvider = (lines: string[]) =>
    withApp(
      `  web:\n    volumes: [{ name: d, path: /a }]\n    provider:\n${lines.map((l) => `      ${l}\n`).join('')}`,
    );

  it('reads a provider without a kind as local, with its defaults', () => {
    expect(findApp(parseConfig(withProvider(['start: run-it'])), 'web').provider).toEqual({
      kind: 'local',
      start: 'run-it',
      checkTimeout: 60_000,
    });
  });

  it("reads a local provider's failback freeze and thaw hooks, and refuses one without the other", () => {
    expect(
      findApp(parseConfig(withProvider(['start: run-it', 'freeze: q', 'thaw: r'])), 'web').provider,
    ).toEqual({ kind: 'local', start: 'run-it', freeze: 'q', thaw: 'r', checkTimeout: 60_000 });
    const alone = thrown(() => parseConfig(withProvider(['start: run-it', 'freeze: q'])));
    expect(alone.subject).toMatch(/^apps\.web\.provider/);
    expect(alone.message).toContain('freeze and thaw hooks go together: give both or neither');
    const empty = thrown(() => parseConfig(withProvider(['freeze: ""', 'thaw: r'])));
    expect(empty.message).toContain('expected a command, or leave freeze out');
  });

  it('reads an alicloud provider', () => {
    const text = withProvider([
      ...ecs,
      'endpoint: 127.0.0.1:9000',
      'protocol: http',
      'check: http://{ip}/health',
    ]);
    expect(findApp(parseConfig(text), 'web').provider).toEqual({
      kind: 'alicloud',
      regionId: 'cn-hangzhou',
      zoneId: 'cn-hangzhou-h',
      vSwitchId: 'vsw-prod',
      securityGroupId: 'sg-prod',
      drillVSwitchId: 'vsw-drill',
      drillSecurityGroupId: 'sg-drill',
      instanceType: 'ecs.g7.large',
      workerInstanceId: 'i-worker',
      endpoint: '127.0.0.1:9000',
      protocol: 'http',
      check: 'http://{ip}/health',
      checkTimeout: 60_000,
    });
  });

  it('names an unknown kind, a missing ECS setting, a bad endpoint and a bad protocol', () => {
    const kind = thrown(() => parseConfig(withProvider(['kind: aws'])));
    expect(kind.subject).toBe('apps.web.provider.kind');
    expect(kind.message).toContain('expected kind local or alicloud');
    const missing = thrown(() =>
      parseConfig(withProvider(ecs.filter((l) => !l.startsWith('drillVSwitchId')))),
    );
    expect(missing.subject).toBe('apps.web.provider.drillVSwitchId');
    expect(missing.message).toContain('required for kind alicloud');
    const endpoint = thrown(() => parseConfig(withProvider([...ecs, 'endpoint: ecs.example.com'])));
    expect(endpoint.subject).toBe('apps.web.provider.endpoint');
    expect(endpoint.message).toContain('expected HOST:PORT');
    const protocol = thrown(() => parseConfig(withProvider([...ecs, 'protocol: ftp'])));
    expect(protocol.message).toContain('expected http or https');
  });

  it('reads the ECS disk and image settings, and names a wrong one', () => {
    const text = withProvider([
      ...ecs,
      'diskCategory: cloud_auto',
      'performanceLevel: PL0',
      'platform: Ubuntu',
      'architecture: arm64',
      'bootMode: UEFI',
      'diskByIdDir: /dev/disk/by-id',
      'bootCheck: warn',
    ]);
    expect(findApp(parseConfig(text), 'web').provider).toMatchObject({
      diskCategory: 'cloud_auto',
      performanceLevel: 'PL0',
      platform: 'Ubuntu',
      architecture: 'arm64',
      bootMode: 'UEFI',
      diskByIdDir: '/dev/disk/by-id',
      bootCheck: 'warn',
    });
    const pl = thrown(() => parseConfig(withProvider([...ecs, 'performanceLevel: PL9'])));
    expect(pl.subject).toBe('apps.web.provider.performanceLevel');
    expect(pl.message).toContain('expected PL0, PL1, PL2 or PL3');
    const category = thrown(() => parseConfig(withProvider([...ecs, 'diskCategory: cloud'])));
    expect(category.message).toContain('expected cloud_essd, cloud_auto');
    const boot = thrown(() => parseConfig(withProvider([...ecs, 'bootMode: legacy'])));
    expect(boot.message).toContain('expected BIOS, UEFI or UEFI-Preferred');
    const check = thrown(() => parseConfig(withProvider([...ecs, 'bootCheck: never'])));
    expect(check.message).toContain('expected enforce, warn or off');
  });

  it('refuses credentials in dr.yaml, naming the variable they belong in, not the value', () => {
    const err = thrown(() => parseConfig(withProvider([...ecs, 'accessKeySecret: s3cr3t-value'])));
    expect(err.subject).toBe('apps.web.provider.accessKeySecret');
    expect(err.message).toContain('set ALIBABA_CLOUD_ACCESS_KEY_SECRET in the worker');
    expect(err.message).not.toContain('s3cr3t-value');
  });
});

describe('readConfig', () => {
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'lifeboat-config-'));
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('says to run dr init when the home has no dr.yaml', async () => {
    const err = await rejected(readConfig(join(home, 'missing'), {}));
    expect(err.code).toBe('home_missing');
    expect(err.message).toContain(join(home, 'missing', 'dr.yaml'));
    expect(err.message).toContain('run `dr init`');
  });

  it('resolves the store against the home and lets DR_GATEWAY override the address', async () => {
    await writeFile(join(home, 'dr.yaml'), defaultConfigText('127.0.0.1:7443'));
    const plain = await readConfig(home, {});
    expect(plain.storeDir).toBe(join(home, 'store'));
    expect(plain.gateway.address).toBe('127.0.0.1:7443');
    const over = await readConfig(home, { DR_GATEWAY: 'dr.example.com:9443' });
    expect(over.gateway.address).toBe('dr.example.com:9443');
    expect(over.gateway.listen).toBe('127.0.0.1:7443');
  });

  it('rejects a DR_GATEWAY that is not HOST:PORT, naming it', async () => {
    await writeFile(join(home, 'dr.yaml'), defaultConfigText('127.0.0.1:7443'));
    const err = await rejected(readConfig(home, { DR_GATEWAY: 'https://dr.example.com' }));
    expect(err.code).toBe('config_invalid');
    expect(err.subject).toBe('DR_GATEWAY');
    expect(err.message).toContain('DR_GATEWAY is not HOST:PORT ("https://dr.example.com")');
    expect(err.message).toContain('set it like 127.0.0.1:7443');
  });

  it('names the file in a validation error from disk', async () => {
    const file = join(home, 'dr.yaml');
    await writeFile(file, 'version: 2\n');
    const err = await rejected(readConfig(home, {}));
    expect(err.message).toMatch(new RegExp(`^${file.replaceAll('/', '\\/')}:1: version: `));
  });
});

describe('findApp', () => {
  it('lists the known apps when the name is unknown', () => {
    const config = parseConfig(withApp('  web:\n    volumes: [{ name: d, path: /a }]\n'));
    const err = thrown(() => findApp(config, 'shop'));
    expect(err.code).toBe('app_unknown');
    expect(err.message).toContain('use one of: web');
    const none = thrown(() => findApp(parseConfig(defaultConfigText('127.0.0.1:7443')), 'shop'));
    expect(none.message).toContain('dr app add APP --volume NAME=PATH');
  });
});
