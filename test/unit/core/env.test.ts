import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV, envIsSet, peekEnv, readEnv } from '../../../core/env.js';
import { ENV_TABLE_END, ENV_TABLE_START, envTable, withEnvTable } from '../../../core/env-doc.js';
import { isDrError } from '../../../core/errors.js';

const root = join(import.meta.dirname, '../../..');

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('the environment schema', () => {
  it('gives each variable its default when unset or blank', () => {
    expect(readEnv('DR_REDIS_PREFIX', {})).toBe('lifeboat:');
    expect(readEnv('DR_REDIS_PREFIX', { DR_REDIS_PREFIX: '  ' })).toBe('lifeboat:');
    expect(readEnv('DR_STOP_TIMEOUT', {})).toBe(10_000);
    expect(readEnv('DR_LOG_LEVEL', {})).toBe('info');
    expect(readEnv('DR_HOME', {})).toBe('.lifeboat');
    expect(readEnv('DR_TRACE_BUFFER_KIB', {})).toBeUndefined();
    expect(readEnv('DR_DEMO_ROOTLESS', {})).toBe(false);
    expect(readEnv('SLACK_API_URL', {})).toBe('https://slack.com/api/');
  });

  it('parses good values (blanks around them ignored)', () => {
    expect(readEnv('DR_TRACE_BUFFER_KIB', { DR_TRACE_BUFFER_KIB: ' 8192 ' })).toBe(8192);
    expect(readEnv('DR_STOP_TIMEOUT', { DR_STOP_TIMEOUT: '1m' })).toBe(60_000);
    expect(readEnv('DR_UP_BACKOFF', { DR_UP_BACKOFF: '250ms' })).toBe(250);
    expect(readEnv('DR_UP_MAX_RESTARTS', { DR_UP_MAX_RESTARTS: '0' })).toBe(0);
    expect(readEnv('DR_GATEWAY', { DR_GATEWAY: '[::1]:7443' })).toBe('[::1]:7443');
    expect(readEnv('DR_DEMO_ROOTLESS', { DR_DEMO_ROOTLESS: '1' })).toBe(true);
    expect(readEnv('SLACK_API_URL', { SLACK_API_URL: 'http://127.0.0.1:9/api' })).toBe(
      'http://127.0.0.1:9/api/',
    );
    expect(readEnv('DINGTALK_API_URL', { DINGTALK_API_URL: 'http://127.0.0.1:9/' })).toBe(
      'http://127.0.0.1:9',
    );
  });

  it('refuses a DR_TRACE_BUFFER_KIB that is not a number, naming it and the remedy', () => {
    for (const bad of ['lots', '0', '-4', '4.5', '4MiB']) {
      const err = errorOf(() => readEnv('DR_TRACE_BUFFER_KIB', { DR_TRACE_BUFFER_KIB: bad }));
      expect(isDrError(err)).toBe(true);
      expect(err.message).toBe(
        `DR_TRACE_BUFFER_KIB ${JSON.stringify(bad)} is not a whole number of KiB above 0. To resolve, set it like 4096, or unset it for the default of 4096`,
      );
      expect(err.message).not.toContain('\n');
    }
  });

  it('refuses each bad value in one line naming the variable', () => {
    const cases: [keyof typeof ENV, string, RegExp][] = [
      ['DR_UP_MAX_RESTARTS', 'many', /^DR_UP_MAX_RESTARTS "many" is not a count\. To resolve/],
      ['DR_UP_BACKOFF', 'soon', /^DR_UP_BACKOFF "soon" is not a duration\. To resolve/],
      ['DR_STOP_TIMEOUT', '500ms', /^DR_STOP_TIMEOUT "500ms" is not a duration of at least 1s/],
      ['DR_LOG_LEVEL', 'loud', /^DR_LOG_LEVEL "loud" is not a log level\. To resolve/],
      ['DR_LOG_FORMAT', 'yaml', /^DR_LOG_FORMAT "yaml" is not a log format\. To resolve/],
      ['DR_REDIS_PREFIX', 'x', /^DR_REDIS_PREFIX "x" is not a key prefix\. To resolve/],
      ['DR_GATEWAY', 'gw', /^DR_GATEWAY is not HOST:PORT \("gw"\)\. To resolve/],
      ['DR_DEMO_ROOTLESS', 'yes', /^DR_DEMO_ROOTLESS "yes" is not 0 or 1\. To resolve/],
      ['SLACK_API_URL', 'ftp://x', /^SLACK_API_URL is not an http\(s\) URL \("ftp:\/\/x"\)/],
    ];
    for (const [name, value, message] of cases) {
      const err = errorOf(() => readEnv(name, { [name]: value }));
      expect(err.message).toMatch(message);
      expect((err as { subject?: string }).subject).toBe(name);
    }
  });

  it('never repeats a secret or a URL that may carry a password', () => {
    const secrets: [keyof typeof ENV, string][] = [
      ['REDIS_URL', 'http://user:hunter2-secret@redis'],
      ['DR_STATUS_TOKEN', 'hunter2-secret'],
      ['SLACK_APP_TOKEN', 'xoxb-hunter2-secret'],
    ];
    for (const [name, value] of secrets) {
      const err = errorOf(() => readEnv(name, { [name]: value }));
      expect(err.message).toContain(name);
      expect(err.message).not.toContain('hunter2');
    }
  });

  it('tells set from unset, and peeks without throwing', () => {
    expect(envIsSet('DR_LOG_LEVEL', { DR_LOG_LEVEL: ' ' })).toBe(false);
    expect(envIsSet('DR_LOG_LEVEL', { DR_LOG_LEVEL: 'debug' })).toBe(true);
    expect(peekEnv('DR_LOG_LEVEL', { DR_LOG_LEVEL: 'loud' })).toBe('info');
    expect(peekEnv('DR_LOG_LEVEL', { DR_LOG_LEVEL: 'debug' })).toBe('debug');
  });

  it('lists every variable in docs/configuration.md as the schema has it', () => {
    const page = readFileSync(join(root, 'docs/configuration.md'), 'utf8');
    expect(page).toContain(`${ENV_TABLE_START}\n${envTable()}\n${ENV_TABLE_END}`);
    expect(withEnvTable(page)).toBe(page);
  });

  it('knows every variable the source reads by name', () => {
    const read = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) {
          const text = readFileSync(join(root, p), 'utf8');
          for (const m of text.matchAll(/(?:readEnv|envIsSet|peekEnv)\('([A-Z0-9_]+)'/g))
            read.add(m[1] as string);
          for (const m of text.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)/g))
            read.add(m[1] as string);
        }
      }
    };
    for (const layer of ['core', 'replicator', 'engine', 'bot', 'cli']) walk(layer);
    // Set by Lifeboat for the commands it runs (dr.yaml's start and check), read by the demo's own check.
    const provided = new Set(['DR_VOLUME_DATA', 'DR_MODE']);
    const unknown = [...read].filter((name) => !(name in ENV) && !provided.has(name));
    expect(unknown).toEqual([]);
  });
});
