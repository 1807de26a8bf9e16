import { chmod, mkdir, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { parseDocument } from 'yaml';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { parseBucketUrl } from '../../core/bucket-url.js';
import { defaultConfigText } from '../../core/config.js';
import { DrError, systemCode } from '../../core/errors.js';
import { homePaths } from '../../core/home.js';
import { tryHostPort } from '../../core/host-port.js';
import { copyShippedPolicies } from '../../engine/shipped-policies.js';
import {
  createKeyEncryptionKeyFile,
  loadKeyEncryptionKey,
} from '../../replicator/crypto/key-encryption-key.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { freePort, portFree } from '../up/ports.js';

const DEFAULT_GATEWAY = '127.0.0.1:7443';
const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

interface InitOptions {
  gateway: string;
  force?: boolean;
  json?: boolean;
  store?: string;
}

export function registerInit(program: Command, exit: ExitState): void {
  program
    .command('init')
    .description('create a Lifeboat home: dr.yaml, the key encryption key and TLS certificates')
    .option('--home <dir>', 'Lifeboat home to create (default: $DR_HOME or ./.lifeboat)')
    .option(
      '--gateway <host:port>',
      'where the gateway listens and agents reach it',
      DEFAULT_GATEWAY,
    )
    .option(
      '--store <s3://BUCKET[/PREFIX]>',
      'keep recovery points in an object store (S3, Ceph RGW, Alibaba OSS) instead of only on this machine; endpoint and credentials from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY',
    )
    .option('--force', 'replace an existing home: new key and certificates, default dr.yaml')
    .option('--json', 'print what was created as JSON')
    .action(async (opts: InitOptions, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const chosen = parseGateway(opts.gateway);
        if (opts.store !== undefined && !parseBucketUrl(opts.store)) {
          throw new DrError(`--store ${JSON.stringify(opts.store)} is not an s3:// URL`, {
            code: 'config_invalid',
            subject: '--store',
            remedy:
              'give it like s3://my-bucket/lifeboat (leave --store out to keep points in the home)',
          });
        }
        const gateway =
          cmd.getOptionValueSource('gateway') === 'default' ? await freeGateway(chosen) : chosen;
        const paths = homePaths(ctx.home);
        const existing = await existingHomeFile([paths.config, paths.kek]);
        if (existing && !opts.force) {
          throw new DrError(`${paths.home} is already a Lifeboat home (${existing} exists)`, {
            code: 'home_exists',
            subject: paths.home,
            remedy:
              'use another --home, or pass --force to replace it. --force overwrites dr.yaml (its apps too) and replaces the key encryption key and certificates: replicas protected by the old key become unreadable and agents holding the old certificates are refused',
          });
        }

        // Generate first: nothing is written if this fails. Loaded here: only
        // `dr init` needs the certificate library, and every command loads this file.
        const { createCertificates } = await import('../../replicator/transport/certificates.js');
        const certs = createCertificates({ gatewayHosts: [gateway.host] });

        await mkdir(paths.home, { recursive: true, mode: 0o700 });
        await chmod(paths.home, 0o700);
        for (const dir of [paths.tlsDir, paths.stateDir, dirname(paths.kek)]) {
          await mkdir(dir, { recursive: true, mode: 0o700 });
          await chmod(dir, 0o700);
        }
        await createKeyEncryptionKeyFile(paths.kek);
        await writeFileAtomic(paths.caCert, certs.caCert, 0o644);
        await writeFileAtomic(paths.caKey, certs.caKey, 0o600);
        await writeFileAtomic(paths.gatewayCert, certs.gatewayCert, 0o644);
        await writeFileAtomic(paths.gatewayKey, certs.gatewayKey, 0o600);
        await writeFileAtomic(paths.agentCert, certs.agentCert, 0o644);
        await writeFileAtomic(paths.agentKey, certs.agentKey, 0o600);
        const policies = await copyShippedPolicies(join(paths.home, 'policies'));
        // dr.yaml last: a home without it is not yet a home, so an interrupted init is visible.
        const config = parseDocument(defaultConfigText(gateway.text, adminName()));
        if (opts.store) config.setIn(['gateway', 'store'], opts.store);
        await writeFileAtomic(paths.config, config.toString(), 0o644);
        const keyId = (await loadKeyEncryptionKey(paths.kek)).id.toString('hex');

        const next = 'dr app add APP --volume NAME=PATH';
        if (opts.json) {
          printJson({
            home: paths.home,
            replaced: existing !== undefined,
            gateway: gateway.text,
            config: paths.config,
            kek: { path: paths.kek, id: keyId },
            tls: {
              caCert: paths.caCert,
              caKey: paths.caKey,
              gatewayCert: paths.gatewayCert,
              gatewayKey: paths.gatewayKey,
              agentCert: paths.agentCert,
              agentKey: paths.agentKey,
            },
            state: paths.stateDir,
            policies: { dir: join(paths.home, 'policies'), copied: policies },
            admin: adminName(),
            next,
          });
          return 0;
        }
        ctx.out(`${existing ? 'Replaced' : 'Created'} Lifeboat home ${paths.home} (mode 0700)`);
        ctx.out(
          `  dr.yaml        configuration; gateway at ${gateway.text}${gateway.text !== chosen.text ? ` (${chosen.text} is taken on this machine)` : ''}`,
        );
        ctx.out(`  keys/kek.key   key encryption key ${keyId} (mode 0600)`);
        ctx.out('                 back it up off this machine: without it no replica can be read');
        ctx.out('  tls/           CA, gateway and agent certificates (keys mode 0600)');
        ctx.out('  state/         local state');
        ctx.out(
          `  policies/      default policies (${policies.length} file(s) copied); edit them, check with \`dr policy test\``,
        );
        ctx.out(
          `  admin          ${adminName()} (in group sre-oncall): the person \`dr drill|failover|failback\` acts as`,
        );
        ctx.out(`Next: add an app to protect, like \`${next}\``);
        return 0;
      }),
    );
}

/**
 * The default gateway address, or the next free port after it when something on this machine
 * already listens there (another home's gateway, say): a home whose `dr gateway` cannot start
 * sent the user to edit dr.yaml by hand.
 */
async function freeGateway(def: {
  host: string;
  text: string;
}): Promise<{ host: string; text: string }> {
  const port = Number(def.text.slice(def.text.lastIndexOf(':') + 1));
  for (let p = port; p < port + 20; p++) {
    if (await portFree({ host: def.host, port: p }))
      return { host: def.host, text: `${def.host}:${p}` };
  }
  const any = await freePort(def.host);
  return { host: def.host, text: `${def.host}:${any}` };
}

/** Validates HOST:PORT (IPv4, [IPv6] or a DNS name; port 1–65535). */
function parseGateway(value: string): { host: string; text: string } {
  const hp = tryHostPort(value, 1);
  const host = hp?.host ?? '';
  const hostOk = host.includes(':') ? isIP(host) === 6 : isIP(host) === 4 || DNS_NAME.test(host);
  if (!hp || !hostOk) {
    throw usageError(
      `--gateway ${JSON.stringify(value)} is not HOST:PORT`,
      'pass it like 127.0.0.1:7443, 10.0.0.5:7443 or dr.example.com:7443 (port 1-65535)',
    );
  }
  return { host, text: value.trim() };
}

/** The first of these files that exists, if any. */
async function existingHomeFile(files: string[]): Promise<string | undefined> {
  for (const file of files) {
    try {
      await stat(file);
      return file;
    } catch (err) {
      if (systemCode(err) !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

/** The local administrator's name in dr.yaml: the login name when it fits, else admin. */
function adminName(): string {
  let name = '';
  try {
    name = userInfo().username.toLowerCase();
  } catch {
    name = ''; // no user database entry (some containers): use the default
  }
  return /^[a-z0-9][a-z0-9_-]{0,62}$/.test(name) ? name : 'admin';
}
