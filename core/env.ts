// Every environment variable Lifeboat reads: its meaning, its default, its parse and its error.
import { z } from 'zod';
import {
  count,
  type EnvVar,
  flag,
  httpUrl,
  parsedBy,
  redisUrl,
  text,
  variable,
} from './env-var.js';
import { DrError } from './errors.js';
import { tryHostPort } from './host-port.js';
import { parseDuration } from './units.js';

export type { EnvVar } from './env-var.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const SLACK_API = 'https://slack.com/api/';
export const DINGTALK_API = 'https://api.dingtalk.com';
/** Where DingTalk's media upload lives (the older API host). */
export const DINGTALK_OAPI = 'https://oapi.dingtalk.com';
export const DINGTALK_GATEWAY = `${DINGTALK_API}/v1.0/gateway/connections/open`;

/** The variables, in the order docs/configuration.md lists them. */
export const ENV = {
  DR_HOME: variable({
    about: 'the home, when `--home` is not given',
    unset: '`.lifeboat`',
    fallback: '.lifeboat',
    schema: text,
    expected: 'a directory',
    remedy: 'set it to the home directory, or unset it',
  }),
  AWS_ENDPOINT_URL_S3: variable({
    about:
      'the S3 endpoint of the object store when `gateway.store` is `s3://…` (Ceph RGW, Alibaba OSS, MinIO); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, read by the AWS SDK',
    unset: '`gateway.s3.endpoint` from dr.yaml, else AWS itself',
    schema: httpUrl,
    expected: 'an http(s) URL',
    remedy: 'set it like http://127.0.0.1:7480, or unset it',
  }),
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: variable({
    about:
      "the AWS SDK's ten-line warning about this Node version, printed by the object store's client; Lifeboat sets it to `true` when unset",
    unset: '`true` (no warning)',
    schema: z.enum(['true', 'false']),
    expected: 'true or false',
    remedy: 'set it to false to see the warning, or unset it',
  }),
  AWS_REGION: variable({
    about: 'the object store region (S3 signing); any name for Ceph RGW',
    unset: '`us-east-1`',
    schema: text,
    expected: 'a region name',
    remedy: 'set it like us-east-1 or oss-cn-hangzhou',
  }),
  DR_GATEWAY: variable({
    about:
      'overrides `gateway.address` (HOST:PORT); unset, the gateway of the `dr up` running on this home, if any',
    unset: '`gateway.address` from dr.yaml',
    schema: z.string().refine((t) => tryHostPort(t) !== undefined),
    expected: 'HOST:PORT',
    echo: 'end',
    remedy: 'set it like 127.0.0.1:7443, or unset it to use gateway.address from dr.yaml',
  }),
  DR_TRACEFS: variable({
    about: 'where tracefs is mounted, when not at `/sys/kernel/tracing`',
    unset: '`/sys/kernel/tracing`, then `/sys/kernel/debug/tracing`',
    schema: text,
    expected: 'a directory',
    remedy: 'set it to where tracefs is mounted, or unset it',
  }),
  DR_TRACE_BUFFER_KIB: variable({
    about: "per-CPU trace buffer of the agent's tracefs instance, in KiB",
    unset: '`4096`',
    schema: count.refine((n) => n > 0),
    expected: 'a whole number of KiB above 0',
    remedy: 'set it like 4096, or unset it for the default of 4096',
  }),
  DR_LOCK_DIR: variable({
    about: 'where agents take their machine-wide device locks',
    unset: '`/run/lifeboat/locks` as root, else `lifeboat-locks` in the temp folder',
    schema: text,
    expected: 'a directory',
    remedy: 'set it to a directory every agent on this machine can write, or unset it',
  }),
  REDIS_URL: variable({
    about:
      '`redis://HOST:PORT`: the gateway publishes replication state there; `dr worker`, `dr drill`, `dr failover`, `dr cancel` and `dr cleanup` need it',
    unset: 'the one of the `dr up` running on this home, if any',
    schema: redisUrl,
    expected: 'a redis:// URL',
    echo: 'never',
    remedy: 'set it like redis://127.0.0.1:6379, or unset it',
  }),
  DR_REDIS_PREFIX: variable({
    about:
      "prefix of Lifeboat's Redis keys: the queue `lifeboat-recovery`, the events stream `<prefix>events`, locks and cancel flags",
    unset: '`lifeboat:`',
    fallback: 'lifeboat:',
    schema: z.string().regex(/^[\w.-]{1,60}:$/),
    expected: 'a key prefix',
    remedy: 'set it like lifeboat: (letters, digits, . _ -, ending in a colon), or unset it',
  }),
  DR_STATUS_TOKEN: variable({
    about:
      'lets readers beyond loopback see the status page and `/metrics` when they present it (16+ characters; docs/security.md)',
    unset: 'only this machine may',
    schema: z.string().min(16),
    expected: 'a token of 16 characters or more',
    problem: 'is shorter than 16 characters',
    echo: 'never',
    remedy: 'set it to a long random value, e.g. `openssl rand -hex 24`, or unset it',
  }),
  DR_UP_MAX_RESTARTS: variable({
    about:
      'restarts of one part `dr up` allows per minute before everything stops; 0 stops everything at the first crash (docs/up.md)',
    unset: '`5`',
    schema: count,
    expected: 'a count',
    remedy: 'set it like 5 (0: stop everything at the first crash), or unset it',
  }),
  DR_UP_BACKOFF: variable({
    about: "`dr up`'s first restart delay, doubled each time up to 30 s (docs/up.md)",
    unset: '`1s`',
    schema: parsedBy(parseDuration),
    expected: 'a duration',
    remedy: 'set it like 1s, or unset it',
  }),
  DR_DEMO_ROOTLESS: variable({
    about:
      "`1`: `dr up --demo` makes demo-shop as a non-root user would (image file, the service's hook, scanning) even as root",
    unset: 'off',
    fallback: false,
    schema: flag,
    expected: '0 or 1',
    remedy: 'set it to 1 (or 0), or unset it',
  }),
  DR_REDIS_SUPERVISED: variable({
    about:
      '`1` (set by `dr up` for its parts when it runs Redis itself and says on its terminal when Redis stops and is back): a part logs its own two lines about a Redis outage at info, in its log, instead of as warnings',
    unset: 'off: warnings',
    fallback: false,
    schema: flag,
    expected: '0 or 1',
    remedy: 'leave it to dr up, or unset it',
  }),
  DR_STOP_TIMEOUT: variable({
    about:
      'how long a long-running part (`gateway`, `agent`, `worker`, `warm`, `serve`) may take to stop after SIGINT or SIGTERM before it exits anyway, leaving its in-flight work for the next start (docs/deployment.md)',
    unset: '`10s`',
    fallback: 10_000,
    schema: parsedBy((t) => {
      const ms = parseDuration(t);
      return ms !== undefined && ms >= 1000 ? ms : undefined;
    }),
    expected: 'a duration of at least 1s',
    remedy: 'set it like 10s, or unset it',
  }),
  DR_LOG_LEVEL: variable({
    about:
      "how much is logged: `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `silent`. A failed command prints one line (`dr: …. To resolve, …`); `debug` adds the stack trace of an unexpected error. `dr drill/failover/failback/pause/resume` show the engine's own info lines only when it is set",
    unset: '`info`',
    fallback: 'info' as LogLevel,
    schema: z.enum(LOG_LEVELS),
    expected: 'a log level',
    remedy: `set it to one of ${LOG_LEVELS.join(', ')}, or unset it (info)`,
  }),
  DR_LOG_FORMAT: variable({
    about:
      '`pretty` (human lines: time, level, part, message, fields) or `json` (one JSON object a line)',
    unset:
      "pretty when standard error is a terminal, JSON otherwise (systemd, Docker, `dr up`'s log files)",
    schema: z.enum(['json', 'pretty']),
    expected: 'a log format',
    remedy: 'set it to json or pretty, or unset it (pretty on a terminal, else json)',
  }),
  DR_LOG_FILE: variable({
    about:
      'write the log to this file (JSON lines) instead of standard error; warnings and errors still show on standard error',
    unset: 'standard error (a part started from a terminal: `DR_HOME/logs/<part>.log`)',
    schema: text,
    expected: 'a file',
    remedy: 'set it to a file this user can write, or unset it',
  }),
  SLACK_BOT_TOKEN: variable({
    about:
      "Slack's bot token (`xoxb-…`): `dr serve` answers `/dr`, mentions and buttons (docs/chat.md)",
    unset: 'Slack stays off',
    schema: text,
    expected: 'a bot token',
    echo: 'never',
    remedy: "set it to the app's Bot User OAuth Token (xoxb-…), or unset it to leave Slack off",
  }),
  SLACK_SIGNING_SECRET: variable({
    about: "Slack's signing secret, for the HTTP receiver at `/slack/events`",
    unset: 'needed unless `SLACK_APP_TOKEN` is set',
    schema: text,
    expected: 'a signing secret',
    echo: 'never',
    remedy: "set it to the app's Signing Secret (Basic Information page)",
  }),
  SLACK_APP_TOKEN: variable({
    about: 'an app-level token (`xapp-…`): Slack over Socket Mode instead of HTTP',
    unset: 'the HTTP receiver',
    schema: z.string().startsWith('xapp-'),
    expected: 'an app-level token',
    echo: 'never',
    remedy:
      'set it to the app-level token (xapp-…) with the connections:write scope, or unset it to use the HTTP receiver',
  }),
  SLACK_API_URL: variable({
    about: 'where Slack Web API calls go',
    unset: `\`${SLACK_API}\``,
    fallback: SLACK_API,
    schema: httpUrl.transform((href) => (href.endsWith('/') ? href : `${href}/`)),
    expected: 'an http(s) URL',
    echo: 'end',
    remedy: `set it like ${SLACK_API}, or unset it`,
  }),
  DINGTALK_CLIENT_ID: variable({
    about: "the DingTalk app's AppKey: `dr serve` connects the robot in stream mode",
    unset: 'DingTalk stays off',
    schema: text,
    expected: 'an AppKey',
    remedy: "set it to the app's AppKey, or unset it to leave DingTalk off",
  }),
  DINGTALK_CLIENT_SECRET: variable({
    about: "the DingTalk app's AppSecret",
    unset: 'needed when `DINGTALK_CLIENT_ID` is set',
    schema: text,
    expected: 'an AppSecret',
    echo: 'never',
    remedy: "set it to the app's AppSecret",
  }),
  DINGTALK_API_URL: variable({
    about: "DingTalk's OpenAPI",
    unset: `\`${DINGTALK_API}\``,
    fallback: DINGTALK_API,
    schema: httpUrl.transform((href) => href.replace(/\/$/, '')),
    expected: 'an http(s) URL',
    echo: 'end',
    remedy: `set it like ${DINGTALK_API}, or unset it`,
  }),
  DINGTALK_OAPI_URL: variable({
    about: "DingTalk's older OpenAPI host, where the robot uploads report pictures (media/upload)",
    unset: `\`${DINGTALK_OAPI}\``,
    fallback: DINGTALK_OAPI,
    schema: httpUrl.transform((href) => href.replace(/\/$/, '')),
    expected: 'an http(s) URL',
    echo: 'end',
    remedy: `set it like ${DINGTALK_OAPI}, or unset it`,
  }),
  DINGTALK_GATEWAY_URL: variable({
    about: "DingTalk's stream gateway (its connections/open URL)",
    unset: `\`${DINGTALK_GATEWAY}\``,
    fallback: DINGTALK_GATEWAY,
    schema: httpUrl,
    expected: 'an http(s) URL',
    echo: 'end',
    remedy: `set it like ${DINGTALK_GATEWAY}, or unset it`,
  }),
  DINGTALK_ROBOT_CODE: variable({
    about: 'the robot that sends messages and cards',
    unset: 'the AppKey',
    schema: text,
    expected: 'a robot code',
    remedy: "set it to the robot's code, or unset it to use the AppKey",
  }),
  DINGTALK_CARD_TEMPLATE_ID: variable({
    about: 'the interactive card template for operations and alerts',
    unset: 'notices go as markdown',
    schema: text,
    expected: 'a card template id',
    remedy: 'set it to the template id from the card platform, or unset it for markdown',
  }),
  ALIBABA_CLOUD_ACCESS_KEY_ID: variable({
    about: "`dr worker`'s Alibaba Cloud AccessKey ID, for recoveries to ECS (docs/recovery.md)",
    unset: 'recoveries to ECS fail, naming it',
    schema: text,
    expected: 'an AccessKey ID',
    echo: 'never',
    remedy: 'set it (and its pair) for `dr worker`; credentials never go in dr.yaml',
  }),
  ALIBABA_CLOUD_ACCESS_KEY_SECRET: variable({
    about: "`dr worker`'s Alibaba Cloud AccessKey secret",
    unset: 'recoveries to ECS fail, naming it',
    schema: text,
    expected: 'an AccessKey secret',
    echo: 'never',
    remedy: 'set it (and its pair) for `dr worker`; credentials never go in dr.yaml',
  }),
};

export type EnvName = keyof typeof ENV;
/** The value `readEnv(name)` returns: the variable's type, or undefined when it has no default. */
export type EnvValue<K extends EnvName> =
  (typeof ENV)[K] extends EnvVar<infer T, infer D> ? T | D : never;

/**
 * The variable `name` from `env`, parsed: its default when unset or blank, and a one-line error
 * naming the variable, what it should be and the remedy when it is not one.
 */
export function readEnv<K extends EnvName>(
  name: K,
  env: NodeJS.ProcessEnv = process.env,
): EnvValue<K> {
  const spec = ENV[name] as EnvVar<unknown>;
  const raw = env[name];
  const value = raw?.trim();
  if (value === undefined || value === '') return spec.fallback as EnvValue<K>;
  const parsed = spec.schema.safeParse(value);
  if (parsed.success) return parsed.data as EnvValue<K>;
  throw envError(name, value);
}

/** The error for a bad value of `name`: `DR_UP_BACKOFF "soon" is not a duration. To resolve, …`. */
export function envError(name: EnvName, value: string): DrError {
  const spec = ENV[name] as EnvVar<unknown>;
  const echo = spec.echo ?? 'name';
  const problem = spec.problem ?? `is not ${spec.expected}`;
  const message =
    echo === 'name'
      ? `${name} ${JSON.stringify(value)} ${problem}`
      : echo === 'end'
        ? `${name} ${problem} (${JSON.stringify(value)})`
        : `${name} ${problem}`;
  return new DrError(message, { code: 'config_invalid', subject: name, remedy: spec.remedy });
}

/** Whether `name` is set (and not blank) in `env`, for the places where only that matters. */
export function envIsSet(name: EnvName, env: NodeJS.ProcessEnv = process.env): boolean {
  return (env[name]?.trim() ?? '') !== '';
}

/**
 * `readEnv` that never throws: a bad value reads as its default. Only for reporting an error
 * (which may be that very value), where a second error would hide the first.
 */
export function peekEnv<K extends EnvName>(
  name: K,
  env: NodeJS.ProcessEnv = process.env,
): EnvValue<K> {
  try {
    return readEnv(name, env);
  } catch {
    return ENV[name].fallback as EnvValue<K>; // the bad value is reported by whoever reads it
  }
}
