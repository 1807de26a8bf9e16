// The shape of dr.yaml: its zod schema (every key, its default and its error) and the types from it.
import { z } from 'zod';
import {
  COMPRESSION_HINT,
  type CompressionSetting,
  parseCompressionSetting,
} from './compression-setting.js';
import { hostPortSchema } from './host-port.js';
import { appNameSchema, volumeNameSchema } from './names.js';
import { knownTimeZone, parseRateSchedule, RATE_HINT, type RateSchedule } from './rate-schedule.js';
import { parseDuration, parseSize } from './units.js';

const hostPort = hostPortSchema;

const size = (what: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a ${what} size like 64KiB or 4MiB` });
      return z.NEVER;
    }
    return n;
  });

const compression = z.string().transform((v, ctx): CompressionSetting => {
  const c = parseCompressionSetting(v);
  if (!c) {
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(v)} is not a compression: ${COMPRESSION_HINT}`,
    });
    return z.NEVER;
  }
  return c;
});

const rateSchedule = z.string().transform((v, ctx): RateSchedule => {
  const r = parseRateSchedule(v);
  if ('error' in r) {
    ctx.addIssue({ code: 'custom', message: `${r.error}: ${RATE_HINT}` });
    return z.NEVER;
  }
  return r.schedule;
});

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseDuration(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration like 5s, 30m, 1h or 30d' });
    return z.NEVER;
  }
  return n;
});

const blockSize = size('block').refine(
  (n) => n >= 4096 && n <= 4 * 1024 * 1024 && (n & (n - 1)) === 0,
  'expected a power of two between 4KiB and 4MiB',
);

const volumeSchema = z.object({
  name: volumeNameSchema,
  path: z.string().min(1),
  /** Replicate only the first SIZE bytes (a device larger than the volume, e.g. a recovered ECS disk). */
  size: z.number().int().positive().optional(),
});

const quiesceSchema = z
  .object({
    /** Mount points frozen with fsfreeze for each cut. */
    fsfreeze: z.array(z.string().min(1)).default([]),
    /** The app's own hook: run before the freeze and after the thaw. */
    freeze: z.string().min(1).optional(),
    thaw: z.string().min(1).optional(),
    timeout: duration.default(2000),
  })
  .refine((q) => (q.freeze === undefined) === (q.thaw === undefined), {
    message: 'freeze and thaw hooks go together: give both or neither',
  });

/** Health check: an http(s) URL that must answer 2xx, or a command that must exit 0. */
const check = z.string().min(1, 'expected a command or an http(s) URL, or leave check out');
/** How long a recovered app may take to pass its health check. */
const checkTimeout = duration.default(60_000);

/** The app runs on this machine. */
const localProviderSchema = z
  .object({
    kind: z.literal('local'),
    /** The command that starts the app against its images (DR_VOLUME_<NAME> in its environment). */
    start: z.string().min(1, 'expected a command, or leave start out').optional(),
    check: check.optional(),
    checkTimeout,
    /**
     * Failback's final copy: run at the DR site before its file systems are frozen (the app stops
     * taking writes, flushes), and `thaw` if the failback fails after it; give both or neither.
     */
    freeze: z.string().min(1, 'expected a command, or leave freeze out').optional(),
    thaw: z.string().min(1, 'expected a command, or leave thaw out').optional(),
  })
  .refine((p) => (p.freeze === undefined) === (p.thaw === undefined), {
    message: 'freeze and thaw hooks go together: give both or neither',
  });

const ecsId = (example: string) =>
  z
    .string({ error: `required for kind alicloud, like ${example}` })
    .min(1, `expected a value like ${example}`);

/** Refuses a credential written into dr.yaml, naming the variable it belongs in. */
const notHere = (variable: string) =>
  z
    .undefined({
      error: `credentials never go in dr.yaml: remove it and set ${variable} in the worker's environment`,
    })
    .optional();

/**
 * The app is recovered into Alibaba Cloud ECS. Credentials are never in dr.yaml: the worker reads
 * ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET from its environment.
 */
const alicloudProviderSchema = z.object({
  kind: z.literal('alicloud'),
  regionId: ecsId('cn-hangzhou'),
  zoneId: ecsId('cn-hangzhou-h'),
  /** Production network, used by failover. */
  vSwitchId: ecsId('vsw-bp1…'),
  securityGroupId: ecsId('sg-bp1…'),
  /** Isolated network, used by drills. */
  drillVSwitchId: ecsId('vsw-bp1…'),
  drillSecurityGroupId: ecsId('sg-bp1…'),
  instanceType: ecsId('ecs.g7.large'),
  /** The DR-region ECS instance the worker runs on; new disks are attached to it. */
  workerInstanceId: ecsId('i-bp1…'),
  /** ECS API host; ecs.<regionId>.aliyuncs.com by default. */
  endpoint: hostPort.optional(),
  protocol: z
    .enum(['http', 'https'], { error: 'expected http or https (https by default)' })
    .optional(),
  /** A command (LIFEBOAT_SERVER_IP set) or a URL with {ip}; absent: the instance Running is healthy. */
  check: check.optional(),
  checkTimeout,
  /** Category of the recovered disks; cloud_essd by default (ESSD-only families need it). */
  diskCategory: z
    .enum(['cloud_essd', 'cloud_auto', 'cloud_essd_entry', 'cloud_ssd', 'cloud_efficiency'], {
      error: 'expected cloud_essd, cloud_auto, cloud_essd_entry, cloud_ssd or cloud_efficiency',
    })
    .optional(),
  /** ESSD performance level; PL1 by default. */
  performanceLevel: z
    .enum(['PL0', 'PL1', 'PL2', 'PL3'], { error: 'expected PL0, PL1, PL2 or PL3' })
    .optional(),
  /** The recovered OS as ECS names it (CreateImage Platform, e.g. Ubuntu); Others Linux by default. */
  platform: z.string().min(1, 'expected an ECS platform like Ubuntu, or leave it out').optional(),
  architecture: z
    .enum(['x86_64', 'arm64', 'i386'], { error: 'expected x86_64, arm64 or i386' })
    .optional(),
  bootMode: z
    .enum(['BIOS', 'UEFI', 'UEFI-Preferred'], { error: 'expected BIOS, UEFI or UEFI-Preferred' })
    .optional(),
  /** The offline bootability check before a launch: enforce (default; a blocked failover stops), warn, off. */
  bootCheck: z
    .enum(['enforce', 'warn', 'off'], { error: 'expected enforce, warn or off' })
    .optional(),
  /** Where the worker finds attached disks by serial; /dev/disk/by-id by default. */
  diskByIdDir: z.string().min(1, 'expected a directory, or leave it out').optional(),
  /** DR_HOME on the recovered instance, where the way home's agent finds its keys; /etc/lifeboat by default. */
  agentHome: z.string().min(1, 'expected a directory, or leave it out').optional(),
  /** How `dr` is run on the recovered instance; `dr` by default. */
  agentCommand: z.string().trim().min(1, 'expected a command, or leave it out').optional(),
  accessKeyId: notHere('ALIBABA_CLOUD_ACCESS_KEY_ID'),
  accessKeySecret: notHere('ALIBABA_CLOUD_ACCESS_KEY_SECRET'),
});

/** How a recovered app is started and checked. Absent, or without a kind: the local provider. */
const providerSchema = z.preprocess(
  (v) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !('kind' in v)
      ? { ...v, kind: 'local' }
      : v,
  z.discriminatedUnion('kind', [localProviderSchema, alicloudProviderSchema], {
    error: 'expected kind local or alicloud',
  }),
);

const appSchema = z.object({
  tier: z.enum(['prod', 'staging', 'dev']).default('dev'),
  blockSize: blockSize.default(64 * 1024),
  volumes: z
    .array(volumeSchema)
    .min(1, 'an app needs at least one volume')
    .refine((v) => new Set(v.map((x) => x.name)).size === v.length, 'volume names must differ'),
  quiesce: quiesceSchema.optional(),
  /**
   * Fences the source at failover (stop the service, unmount, power off, detach a disk): a shell
   * command run by the worker before the recovered server starts, so two copies never take writes.
   */
  fence: z.string().trim().min(1, 'expected a command, or leave fence out').optional(),
  /**
   * Undoes the fence at the end of a failback (mount, start the service): run by the worker once
   * the originals hold everything, before replication resumes. Absent: start the app by hand.
   */
  unfence: z.string().trim().min(1, 'expected a command, or leave unfence out').optional(),
  /** Longest the fence (or unfence) command may run before it is killed and counts as failed. */
  fenceTimeout: duration
    .refine((n) => n >= 100 && n <= 3_600_000, 'expected a duration from 100ms to 1h')
    .default(60_000),
  provider: providerSchema.optional(),
  /** People (names under `people:`) who own the app; policies see them as the fact `owners`. */
  owners: z.array(z.string().min(1)).default([]),
  /** How far behind the DR copy may fall before the RPO monitor alerts. */
  rpoObjective: duration.default(60_000),
  /** IANA time zone of the app's business hours (a bandwidth cap by time of day); default: the host's. */
  timeZone: z
    .string()
    .refine(knownTimeZone, 'expected an IANA time zone like Europe/Berlin or Asia/Shanghai')
    .optional(),
});

/** A chat identity: `slack:U…`, `dingtalk:<staffId>`, `console:<name>`. */
const IDENTITY = /^(slack|dingtalk|console):[^\s]+$/;
const GROUP = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A surface-qualified channel: `slack:C…`, `dingtalk:cid…`, or `console`. */
const CHANNEL = /^((slack|dingtalk):[^\s]+|console(:[^\s]+)?)$/;
const channelList = z.array(
  z.string().regex(CHANNEL, 'expected a channel like slack:C0123, dingtalk:cid… or console'),
);

const personSchema = z.object({
  ids: z
    .array(
      z
        .string()
        .regex(IDENTITY, 'expected an identity like slack:U0123, dingtalk:1234 or console:alice'),
    )
    .default([]),
  groups: z
    .array(z.string().regex(GROUP, 'group names are lower-case letters, digits, - and _'))
    .default([]),
});

const channelsSchema = z
  .object({
    /** Where the engine reports on itself (a refused policy file). */
    admin: channelList.default([]),
    /** Where RPO and agent alerts go. */
    alerts: channelList.default([]),
    /** Where an unacknowledged alert is re-sent. */
    escalation: channelList.default([]),
    /** Each app's own channels: its operations and approvals are posted there too. */
    apps: z.record(appNameSchema, channelList).default({}),
  })
  .default({ admin: [], alerts: [], escalation: [], apps: {} });

export const configSchema = z.object({
  version: z.literal(1).default(1),
  gateway: z
    .object({
      listen: hostPort.default('127.0.0.1:7443'),
      /** Where agents and the CLI reach the gateway: one HOST:PORT, or a list of several gateways. */
      address: z
        .union([hostPort, z.array(hostPort).min(1, 'list at least one gateway')])
        .default('127.0.0.1:7443'),
      store: z.string().default('store'),
      minFreeSpace: size('disk').default(64 * 1024 * 1024),
      /** Store appends with O_DIRECT (bypassing the page cache) where the file system allows. */
      directIo: z.boolean().default(true),
      /** Plain-HTTP HOST:PORT for Prometheus' `/metrics`; absent, the gateway serves no metrics. */
      metrics: hostPort.optional(),
      /** With `store: s3://…`: the S3 endpoint (AWS_ENDPOINT_URL_S3 wins). Never credentials. */
      s3: z.object({ endpoint: z.string().url().optional() }).strict().optional(),
      /**
       * With `store: s3://…` and REDIS_URL: several gateways serve the bucket, each app leased to
       * one of them in Redis (`dr gateway` on each machine, each with its own home).
       */
      shared: z.boolean().default(false),
      /** HOST:PORT agents reach this gateway at, named in redirects (default: `listen`). */
      advertise: hostPort.optional(),
      /**
       * HOST:PORT for sealed record streams (restores over plain TCP, the records already
       * AES-256-GCM); default: the listen host, a free port. `false`: records over TLS only.
       */
      recordStreams: z.union([hostPort, z.literal(false)]).optional(),
    })
    // `address` is the first gateway (what one address configured always meant); `addresses` all.
    .transform(({ address, ...g }) => {
      const addresses = typeof address === 'string' ? [address] : address;
      return { ...g, address: addresses[0] as string, addresses };
    })
    .default({
      listen: '127.0.0.1:7443',
      address: '127.0.0.1:7443',
      addresses: ['127.0.0.1:7443'],
      shared: false,
      store: 'store',
      minFreeSpace: 64 * 1024 * 1024,
      directIo: true,
    }),
  retention: z
    .object({
      all: duration.default(3_600_000),
      hourly: duration.default(86_400_000),
      daily: duration.default(30 * 86_400_000),
    })
    .default({ all: 3_600_000, hourly: 86_400_000, daily: 30 * 86_400_000 }),
  agent: z
    .object({
      interval: duration.default(1000),
      batchSize: size('batch').default(4 * 1024 * 1024),
      tracker: z.enum(['auto', 'trace', 'scan']).default('auto'),
      /** Read every block of a volume, even holes and free space (first sync and resyncs). */
      fullCopy: z.boolean().default(false),
      /** Wire compression: zstd (level adapted to the link), zstd:N (pinned) or lz4. */
      compression: compression.default({ codec: 'zstd', level: 'auto' }),
      /** Bandwidth cap, optionally by time of day in the app's time zone; absent: none. */
      maxRate: rateSchedule.optional(),
    })
    .default({
      interval: 1000,
      batchSize: 4 * 1024 * 1024,
      tracker: 'auto',
      compression: { codec: 'zstd', level: 'auto' },
      fullCopy: false,
    }),
  recovery: z
    .object({
      /**
       * Keep each app's last materialised images (plaintext) in DR_HOME/cache/images so the next
       * drill or failover fetches only what changed; false keeps no plaintext between operations.
       */
      imageCache: z.boolean().default(true),
      /**
       * Ranges of blocks a restore, drill, failover, hydration or `dr warm` fetches at once
       * (1 to 8). Unset: chosen from the machine's core count (see docs/benchmarks.md, Restores).
       */
      restoreParallel: z.number().int().min(1).max(8).optional(),
      /**
       * Worker threads that fetch, decrypt and write those ranges beside the main thread (0 to 8;
       * 0: the main thread does it all). Unset: chosen from the machine's core count.
       */
      restoreWorkers: z.number().int().min(0).max(8).optional(),
      /**
       * Serve recovered volumes on demand over FUSE (local provider): healthy in seconds whatever
       * the disk size, hydrating behind. Unset: drills do, failovers materialise in full first.
       */
      instant: z.boolean().optional(),
      /**
       * After a failback, how long the worker waits for the app's agent to commit a point from
       * the written-back state before it reports the app protected again (or says why not).
       */
      reprotectWait: duration.default(120_000),
      /**
       * Failback from ECS: how long the agent started on the recovered instance may take to reach
       * the gateway before the failback stops, with the agent's own last log line.
       */
      wayHomeConnectWait: duration.default(120_000),
    })
    .default({ imageCache: true, reprotectWait: 120_000, wayHomeConnectWait: 120_000 }),
  /** People, their chat identities and groups. Anyone not listed may only read. */
  people: z
    .record(
      z.string().regex(GROUP, 'person names are lower-case letters, digits, - and _'),
      personSchema,
    )
    .default({}),
  /** The person the local `dr` command acts as (actor `cli:<name>`). */
  admin: z.string().regex(GROUP, 'expected the name of a person under people:').optional(),
  /** The chat console, `dr chat`: it acts as the operating-system user who runs it. */
  console: z
    .object({
      /** Let `dr chat --as PERSON` act as anyone under people: (one shared terminal); off by default. */
      allowAs: z.boolean().default(false),
    })
    .default({ allowAs: false }),
  /** Directory of policy files, relative to DR_HOME. */
  policies: z.string().min(1).default('policies'),
  channels: channelsSchema,
  apps: z.record(appNameSchema, appSchema).default({}),
});

export type Config = z.infer<typeof configSchema>;
export type AppConfig = Config['apps'][string];
export type VolumeConfig = AppConfig['volumes'][number];
export type ProviderConfig = NonNullable<AppConfig['provider']>;
export type LocalProviderConfig = Extract<ProviderConfig, { kind: 'local' }>;
export type AlicloudProviderConfig = Extract<ProviderConfig, { kind: 'alicloud' }>;
