/** The agent's settings: one default (from config), the command line over it, bad flags refused. */
import { describe, expect, it } from 'vitest';
import { defaultConfigText, type LoadedConfig, parseConfig } from '../../../../core/config.js';
import { DrError } from '../../../../core/errors.js';
import { pollPeriod, resolveAgentSettings } from '../../../../replicator/agent/agent-settings.js';

const APP = `  web:\n    volumes:\n      - name: data\n        path: /tmp/web-data.img\n`;

function loaded(text: string): LoadedConfig {
  const config = parseConfig(text);
  return { ...config, home: '/srv/lifeboat', storeDir: '/srv/lifeboat/store' };
}

/** dr init's config with one app. */
const initial = () =>
  loaded(`${defaultConfigText('127.0.0.1:7443').replace('apps: {}\n', '')}apps:\n${APP}`);

function refusal(fn: () => unknown): DrError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DrError);
    return err as DrError;
  }
  throw new Error('expected a DrError, nothing was thrown');
}

describe('resolveAgentSettings', () => {
  it('takes the interval, batch size and tracker from dr.yaml: a 1 s period by default', () => {
    const s = resolveAgentSettings(initial(), 'web');
    expect(s.intervalMs).toBe(1000);
    expect(s.pollMs).toBe(1000);
    expect(s.batchBytes).toBe(4 * 1024 * 1024);
    expect(s.tracker).toBe('auto');
    expect(s.stateDir).toBe('/srv/lifeboat/state/agents/web');
    expect(s.appConfig.volumes[0]?.path).toBe('/tmp/web-data.img');
  });

  it('defaults to 1 s when dr.yaml has no agent section at all', () => {
    const s = resolveAgentSettings(loaded(`version: 1\napps:\n${APP}`), 'web');
    expect(s.intervalMs).toBe(1000);
  });

  it('uses what dr.yaml says over the default', () => {
    const text = defaultConfigText('127.0.0.1:7443')
      .replace('interval: 1s', 'interval: 30s')
      .replace('tracker: auto', 'tracker: scan')
      .replace('apps: {}\n', '');
    const s = resolveAgentSettings(loaded(`${text}apps:\n${APP}`), 'web');
    expect(s.intervalMs).toBe(30_000);
    expect(s.tracker).toBe('scan');
    // Polls stay at most 5 s apart however long the period.
    expect(s.pollMs).toBe(5000);
  });

  it('lets the command line override dr.yaml', () => {
    const s = resolveAgentSettings(initial(), 'web', {
      interval: '300ms',
      tracker: 'trace',
      trace: { tracefs: '/sys/kernel/tracing', bufferKiB: 4096 },
    });
    expect(s.intervalMs).toBe(300);
    expect(s.pollMs).toBe(1000);
    expect(s.tracker).toBe('trace');
    expect(s.trace).toEqual({ tracefs: '/sys/kernel/tracing', bufferKiB: 4096 });
  });

  it('refuses an --interval that is not a duration, naming it and the remedy', () => {
    const err = refusal(() => resolveAgentSettings(initial(), 'web', { interval: 'soon' }));
    expect(err.code).toBe('usage');
    expect(err.message).toBe(
      '--interval soon is not a duration of at least 100ms. To resolve, write it like 1s, 5s or 1m',
    );
  });

  it('refuses an --interval under 100 ms', () => {
    const err = refusal(() => resolveAgentSettings(initial(), 'web', { interval: '50ms' }));
    expect(err.subject).toBe('--interval');
    expect(err.message).toMatch(/^--interval 50ms is not a duration of at least 100ms/);
  });

  it('refuses an agent.interval in dr.yaml under 100 ms, naming the key', () => {
    const text = defaultConfigText('127.0.0.1:7443')
      .replace('interval: 1s', 'interval: 10ms')
      .replace('apps: {}\n', '');
    const err = refusal(() => resolveAgentSettings(loaded(`${text}apps:\n${APP}`), 'web'));
    expect(err.subject).toBe('agent.interval');
    expect(err.message).toMatch(/^agent\.interval in dr\.yaml \(10ms\) is not a duration/);
  });

  it('refuses an unknown --tracker', () => {
    const err = refusal(() => resolveAgentSettings(initial(), 'web', { tracker: 'ebpf' }));
    expect(err.message).toBe(
      '--tracker ebpf is not a tracker. To resolve, use auto, trace or scan',
    );
  });

  it('refuses an app dr.yaml does not have', () => {
    const err = refusal(() => resolveAgentSettings(initial(), 'db'));
    expect(err.message).toMatch(/db/);
  });
});

describe('pollPeriod', () => {
  it('follows the interval between 1 s and 5 s', () => {
    expect(pollPeriod(100)).toBe(1000);
    expect(pollPeriod(2500)).toBe(2500);
    expect(pollPeriod(60_000)).toBe(5000);
  });
});
